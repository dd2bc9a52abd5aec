"""The API's data shapes: one model per thing, shared by the store and the routes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

# Lone surrogates ("\ud800") are refused by pydantic's str validation itself (string_unicode).
Text = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


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
