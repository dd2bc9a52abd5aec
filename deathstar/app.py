"""The HTTP API: assembles settings, storage, middleware, error handlers and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from deathstar import __version__, errors
from deathstar.config import Settings
from deathstar.guard import RequestGuard
from deathstar.routes import ops, targets
from deathstar.storage import TargetStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = TargetStore(settings.database)
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(
        title="deathstar",
        version=__version__,
        summary="Track targets across the galaxy.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RequestGuard)
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(targets.router)
    return app
