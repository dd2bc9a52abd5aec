"""How the container lives: its user, health, shutdown, logs, read-only root and its volume."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from containers import Lab, Service, exists, wait_until

UID = 10001
HEALTHY_WITHIN = 30  # seconds; the HEALTHCHECK probes every 5 s
STOP_GRACE = 2  # seconds between SIGTERM and SIGKILL


def test_runs_as_a_fixed_non_root_user(service: Service, image_attrs: dict[str, Any]) -> None:
    assert image_attrs["Config"]["User"] == f"{UID}:{UID}"
    assert service.exec("id", "-u") == (0, f"{UID}\n")
    assert service.exec("id", "-g") == (0, f"{UID}\n")
    # The server itself (PID 1, thanks to the exec-form ENTRYPOINT) runs as that user too.
    exit_code, status = service.exec("cat", "/proc/1/status")
    assert exit_code == 0, status
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids == [str(UID)] * 4
    exit_code, cmdline = service.exec("cat", "/proc/1/cmdline")
    assert exit_code == 0
    assert cmdline.split("\0")[1:3] == ["/opt/venv/bin/deathstar", "api"]


def healthy(attrs: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The container's health once Docker's HEALTHCHECK has found it healthy."""

    def health() -> dict[str, Any] | None:
        state: dict[str, Any] = attrs()["State"]
        assert state["Running"], state
        status: dict[str, Any] = state["Health"]
        assert status["Status"] != "unhealthy", status
        return status if status["Status"] == "healthy" else None

    status: dict[str, Any] = wait_until(
        health, HEALTHY_WITHIN, what="State.Health.Status == healthy"
    )
    return status


def test_healthcheck_turns_the_container_healthy(service: Service) -> None:
    status = healthy(service.attrs)
    assert status["Log"][-1]["ExitCode"] == 0, status["Log"][-1]


def test_port_0_in_the_image_with_a_port_file(lab: Lab) -> None:
    """The server picks its port; the HEALTHCHECK probes the one the server wrote down."""
    port_file = "/tmp/deathstar.port"  # noqa: S108 - inside the container, which is ours
    container = lab.unpublished(DEATHSTAR_PORT="0", DEATHSTAR_PORT_FILE=port_file)
    wrapped = container.get_wrapped_container()

    def attrs() -> dict[str, Any]:
        wrapped.reload()
        return dict(wrapped.attrs)

    status = healthy(attrs)
    assert status["Log"][-1]["ExitCode"] == 0, status["Log"][-1]
    written = container.exec(["cat", port_file])
    assert written.exit_code == 0, written.output
    reported = json.loads(written.output)
    assert reported == {"host": "0.0.0.0", "port": reported["port"], "pid": 1}  # noqa: S104
    assert reported["port"] != 0
    # Without the file the healthcheck cannot know the port: it says so rather than probe 0.
    blind = container.exec(["env", "-u", "DEATHSTAR_PORT_FILE", "deathstar", "healthcheck"])
    assert blind.exit_code == 2
    assert b"port 0 lets the server pick its port" in blind.output


def test_sigterm_stops_it_cleanly_and_every_log_line_is_json(lab: Lab) -> None:
    service = lab.service()
    marker = f"/v1/targets/{uuid.uuid4().int % 2**62}"
    assert service.get(marker).status_code == 404  # leaves an idle keep-alive connection

    # docker stop -t 2: SIGTERM, then SIGKILL after 2 s, which would make the exit code 137.
    assert service.stop(grace=STOP_GRACE) == 0
    assert service.attrs()["State"]["OOMKilled"] is False

    lines = [line for line in service.logs().splitlines() if line.strip()]
    assert lines, "the container logged nothing"
    entries = []
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"ts", "level", "logger", "msg"} <= set(entry), line
        entries.append(entry)
    access = [e for e in entries if e["logger"] == "deathstar.access" and e.get("path") == marker]
    assert len(access) == 1, entries
    assert access[0]["method"] == "GET"
    assert access[0]["status"] == 404
    assert isinstance(access[0]["duration_ms"], float | int)
    assert any(e["msg"].startswith("Finished server process") for e in entries), entries


def test_read_only_root_filesystem(lab: Lab) -> None:
    service = lab.service(volume=lab.volume(), read_only=True)
    host_config = service.attrs()["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True
    assert not host_config.get("Tmpfs"), "the service needs no tmpfs"
    exit_code, output = service.exec("touch", "/opt/probe")
    assert exit_code != 0
    assert "Read-only file system" in output

    assert service.get("/readyz").status_code == 200
    created = service.post("/v1/targets", json={"name": "Jedha", "system": "Jedha"})
    assert created.status_code == 201, created.text
    fired = service.post(f"{created.headers['Location']}/fire")
    assert fired.status_code == 200, fired.text
    assert service.get(created.headers["Location"]).json()["status"] == "destroyed"
    assert [t["name"] for t in service.all_targets()] == ["Jedha"]


def test_targets_survive_a_new_container_on_the_same_volume(lab: Lab, docker_client: Any) -> None:
    volume = lab.volume()
    # The first container is removed (with its anonymous volumes) before the second starts.
    with lab.serving(volume=volume) as first:
        ids = []
        for i in range(30):
            response = first.post(
                "/v1/targets",
                json={"name": f"world-{i}", "system": "Outer Rim", "shielded": i % 7 == 0},
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        for i, target_id in enumerate(ids):
            if i % 3 == 1 and i % 7 != 0:  # fire at some of the unshielded ones
                assert first.post(f"/v1/targets/{target_id}/fire").status_code == 200
        assert first.delete(f"/v1/targets/{ids[-1]}").status_code == 204
        before = first.all_targets()
        assert len(before) == 29
        assert first.stop(grace=STOP_GRACE) == 0
    assert not exists(docker_client, first.id), "the first container was not removed"

    second = lab.service(volume=volume)
    assert second.id != first.id
    assert second.all_targets() == before
    # AUTOINCREMENT survives too: a deleted id is never handed out again.
    again = second.post("/v1/targets", json={"name": "world-new", "system": "Outer Rim"})
    assert again.status_code == 201, again.text
    assert again.json()["id"] > ids[-1]
