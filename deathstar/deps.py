"""FastAPI dependencies: what a route needs, set up once by the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from deathstar.config import Settings
from deathstar.storage import TargetStore


# async although they do no I/O: FastAPI would run a plain def dependency in the threadpool.
async def get_store(request: Request) -> TargetStore:
    store: TargetStore = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[TargetStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
