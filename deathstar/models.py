"""The API's data shapes: one model per thing, shared by the store and the routes."""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

# Control, format (zero-width, bidi overrides), private-use, surrogate and unassigned code
# points: invisible or ambiguous in a name, and a way to make look-alike duplicates.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})


def _nfc(value: object) -> object:
    # Before the length and pattern checks, so that they apply to the text as stored.
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _printable(value: str) -> str:
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise ValueError(f"must not contain the character U+{ord(char):04X}")
    return value


# Stored in NFC, so names that differ only by normalization are one name (a 409).
# Lone surrogates ("\ud800") are refused by pydantic's str validation itself (string_unicode).
Text = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=r"\S"),
    BeforeValidator(_nfc),  # wraps what stands before it: runs first
    AfterValidator(_printable),
]


class TargetState(StrEnum):
    ACTIVE = "active"
    DESTROYED = "destroyed"


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text = Field(description="Unique name of the target.")
    system: Text = Field(description="Star system the target is in.")
    shielded: StrictBool = Field(default=False, description="A shielded target cannot be fired at.")


class Target(BaseModel):
    """A target as stored and returned; the store validates its rows straight into this."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    system: str
    shielded: bool
    status: TargetState
    created_at: str
    destroyed_at: str | None


class TargetPage(BaseModel):
    items: list[Target]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    detail: Any


class VersionInfo(BaseModel):
    version: str
    revision: str
    created: str


class HealthStatus(BaseModel):
    status: str


class NotReady(HealthStatus):
    detail: str
