"""Liveness, readiness and build information."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deathstar import __version__
from deathstar.deps import SettingsDep, StoreDep
from deathstar.models import HealthStatus, VersionInfo

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=HealthStatus)
async def healthz() -> dict[str, str]:
    """Liveness: the process serves HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "Storage unreachable."}},
)
async def readyz(store: StoreDep) -> JSONResponse:
    """Readiness: the SQLite store answers a query."""
    if store.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "storage unavailable"}, status_code=503)


@router.get("/version", response_model=VersionInfo)
async def version(settings: SettingsDep) -> dict[str, str]:
    """The package version and the revision and build time the image was made from."""
    return {"version": __version__, "revision": settings.revision, "created": settings.created}
