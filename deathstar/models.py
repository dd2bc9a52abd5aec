"""The API's data shapes: one model per thing, shared by the store and the routes."""

from __future__ import annotations

import sys
import unicodedata
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic.config import JsonDict

# Control, format (zero-width, bidi overrides), private-use and surrogate code points:
# invisible or ambiguous in a name, and a way to make look-alike duplicates. Unassigned code
# points pass: which those are depends on the Unicode version of the Python that runs.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


def _nfc(value: object) -> object:
    # Before the length and pattern checks, so that they apply to the text as stored.
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _printable(value: str) -> str:
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise ValueError(f"must not contain the character U+{ord(char):04X}")
    return value


def _escape(code: int) -> str:
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def _refused_ranges() -> str:
    """The refused code points (surrogates aside) as a regex character class body."""
    ranges: list[str] = []
    start = None
    for code in range(sys.maxunicode + 2):
        refused = code <= sys.maxunicode and not 0xD800 <= code <= 0xDFFF
        refused = refused and unicodedata.category(chr(code)) in REFUSED_CATEGORIES
        if refused and start is None:
            start = code
        elif not refused and start is not None:
            end = code - 1
            ranges.append(_escape(start) if start == end else f"{_escape(start)}-{_escape(end)}")
            start = None
    return "".join(ranges)


@cache
def text_pattern() -> str:
    """What the OpenAPI document states: no refused character and some non-space one.

    The service checks the same with _printable, whose error names the character instead of
    the pattern. Made on first use, when the schema is: the scan over every code point takes
    about 0.1 s, which the server's start need not wait for.

    The refused class appears once, in a lookahead: a generator such as Hypothesis expands a
    class code point by code point (the private-use planes alone are 137,000), and filters by
    the whole pattern what it draws for a lookahead. ``.`` stops only at a newline, which is
    itself refused, so the lookahead sees every character up to the first refused one.
    """
    return f"^(?!.*[{_refused_ranges()}]).*\\S.*$"


def _document_pattern(schema: JsonDict) -> None:
    schema["pattern"] = text_pattern()


# Stored in NFC, so names that differ only by normalization are one name (a 409).
# Lone surrogates ("\\ud800") are refused by pydantic's str validation itself (string_unicode).
Text = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=r"\S", json_schema_extra=_document_pattern),
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
