"""The targets resource: create, list, read, delete and fire.

Every storage call runs on a worker thread: SQLite may wait for another process's write
lock, and the event loop must keep serving meanwhile.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from deathstar.deps import StoreDep
from deathstar.guard import is_json
from deathstar.models import ErrorBody, Target, TargetIn, TargetPage
from deathstar.routes import COMMON_ERRORS

MAX_PAGE = 100
MAX_SQLITE_INT = 2**63 - 1

TargetId = Annotated[int, Path(ge=1, le=MAX_SQLITE_INT, description="The target's id.")]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No target with this id."},
    409: {"model": ErrorBody, "description": "The request conflicts with the target's state."},
    415: {"model": ErrorBody, "description": "The body is not sent as application/json."},
}


async def require_json(request: Request) -> None:
    # Without it a JSON body under another content type would get a misleading 422.
    if not is_json(request.scope):
        raise HTTPException(415, "send the body with Content-Type: application/json")


router = APIRouter(prefix="/v1/targets", tags=["targets"], responses=COMMON_ERRORS)


@router.post(
    "",
    status_code=201,
    response_model=Target,
    responses={k: ERRORS[k] for k in (409, 415)},
    dependencies=[Depends(require_json)],
)
async def create_target(body: TargetIn, store: StoreDep, response: Response) -> Target:
    """Create a target. Names are unique: a second target with the same name is a 409."""
    target = await run_in_threadpool(store.create, body.name, body.system, shielded=body.shielded)
    response.headers["Location"] = f"/v1/targets/{target.id}"
    return target


@router.get("", response_model=TargetPage)
async def list_targets(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQLITE_INT)] = 0,
) -> TargetPage:
    """List targets by id, a page at a time."""
    page = store.cached_page(limit=limit, offset=offset)
    if page is None:
        page = await run_in_threadpool(store.list, limit=limit, offset=offset)
    targets, total = page
    return TargetPage(items=targets, total=total, limit=limit, offset=offset)


@router.get("/{target_id}", response_model=Target, responses={404: ERRORS[404]})
async def get_target(target_id: TargetId, store: StoreDep) -> Target:
    """One target."""
    return await run_in_threadpool(store.get, target_id)


@router.delete("/{target_id}", status_code=204, responses={404: ERRORS[404]})
async def delete_target(target_id: TargetId, store: StoreDep) -> Response:
    """Delete a target."""
    await run_in_threadpool(store.delete, target_id)
    return Response(status_code=204)


@router.post(
    "/{target_id}/fire", response_model=Target, responses={k: ERRORS[k] for k in (404, 409)}
)
async def fire(target_id: TargetId, store: StoreDep) -> Target:
    """Fire at a target: it becomes destroyed. 409 when it is shielded or already destroyed."""
    return await run_in_threadpool(store.fire, target_id)
