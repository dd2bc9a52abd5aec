"""Liveness, readiness and build information."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from deathstar import __version__
from deathstar.deps import SettingsDep, StoreDep
from deathstar.models import HealthStatus, NotReady, VersionInfo
from deathstar.routes import COMMON_ERRORS

router = APIRouter(tags=["ops"], responses=COMMON_ERRORS)


@router.get("/healthz", response_model=HealthStatus)
async def healthz() -> dict[str, str]:
    """Liveness: the process serves HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=HealthStatus,
    responses={503: {"model": NotReady, "description": "Storage cannot take writes."}},
)
async def readyz(store: StoreDep) -> JSONResponse:
    """Readiness: a write to the store would succeed (tried, then rolled back)."""
    problem = await run_in_threadpool(store.problem)
    if problem is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "storage unavailable", "detail": problem}, status_code=503)


@router.get("/version", response_model=VersionInfo)
async def version(settings: SettingsDep) -> dict[str, str]:
    """The package version and the revision and build time the image was made from."""
    return {"version": __version__, "revision": settings.revision, "created": settings.created}
