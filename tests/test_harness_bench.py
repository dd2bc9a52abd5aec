"""The logic of `nox -s bench`: statistics, targets, layer sizes, wrk output, tables, JSON.

The measuring itself runs against a stand-in engine (FakeEngine): it answers the docker
commands the bench sends, and its containers are small HTTP servers on 127.0.0.1. No timing is
asserted anywhere: figures depend on the machine.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import HarnessError
from harness.bench import layers as bench_layers
from harness.bench import legacy as bench
from harness.bench import load as bench_load
from harness.bench import report as bench_report
from harness.bench.report import Figure, Target
from harness.core import process
from tests.gitrepo import GIT_ENV, git

# --- statistics ------------------------------------------------------------------------------


def test_median_of_odd_and_even_counts() -> None:
    assert bench_report.median([3.0, 1.0, 2.0]) == 2.0
    assert bench_report.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        bench_report.median([])


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench_report.percentile(values, 50) == pytest.approx(50.5)
    assert bench_report.percentile(values, 99) == pytest.approx(99.01)
    assert bench_report.percentile(values, 0) == 1.0
    assert bench_report.percentile(values, 100) == 100.0
    assert bench_report.percentile([7.0], 99) == 7.0
    assert bench_report.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


@pytest.mark.parametrize(("values", "pct"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_nonsense(values: list[float], pct: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        bench_report.percentile(values, pct)


def test_ratio() -> None:
    assert bench_report.ratio(3.0, 4.0) == 0.75
    assert bench_report.ratio(3.0, 0.0) is None
    assert bench_report.ratio(None, 4.0) is None
    assert bench_report.ratio(3.0, None) is None


# --- targets and figures ---------------------------------------------------------------------


def test_target_limits_and_baseline() -> None:
    faster = Target(at_most=4.0, beat_baseline=True)
    assert faster.verdict(3.0, 5.0) is True
    assert faster.verdict(3.0, 2.0) is False  # under the limit, but slower than the baseline
    assert faster.verdict(4.5, 9.0) is False
    assert faster.verdict(3.0, None) is True  # nothing to compare with
    assert faster.verdict(None, 5.0) is None
    more = Target(at_least=1500, beat_baseline=True)
    assert more.verdict(1600, 1000) is True
    assert more.verdict(1600, 2000) is False
    assert more.verdict(1400, 1000) is False


def test_target_descriptions() -> None:
    assert Target(at_most=4.0, beat_baseline=True).describe("s", "seed-style") == (
        "≤ 4.00 s, ≤ seed-style"
    )
    assert Target(at_least=1500).describe("req/s", None) == "≥ 1,500 req/s"
    assert Target(at_most=20_000).describe("bytes", "seed") == "≤ 20.0 kB"
    assert Target(at_most=17e6).describe("bytes", None) == "≤ 17.000 MB"
    assert Target(at_least=1, beat_baseline=True).describe("count", "x") == "≥ 1, ≥ x"


def test_figure_median_ratio_and_verdict() -> None:
    fig = Figure("P1a", "rebuild", "s", runs=[3.0, 2.0, 10.0], baseline_name="seed")
    fig.baseline_runs = [4.0, 6.0, 5.0]
    fig.target = Target(at_most=4.0, beat_baseline=True)
    assert fig.value == 3.0
    assert fig.baseline == 5.0
    assert fig.ratio == pytest.approx(0.6)
    assert fig.verdict is True
    assert Figure("X", "x", "s").value is None
    assert Figure("X", "x", "s", target=Target(at_most=1)).verdict is None
    failed = Figure("X", "x", "s", runs=[1.0], target=Target(at_most=2), error="boom")
    assert failed.verdict is None


def test_error_counts_are_summed_not_medianed() -> None:
    errors = Figure("P5.err", "errors", "count", runs=[0, 0, 7], aggregate="sum")
    errors.target = Target(at_most=0)
    assert errors.value == 7
    assert errors.verdict is False


def test_figure_json_shape() -> None:
    fig = Figure("P2", "payload", "bytes", runs=[17e6], baseline_name="seed-style")
    fig.baseline_runs, fig.target, fig.note = [40e6], Target(at_most=17e6, beat_baseline=True), "n"
    data = fig.as_json()
    assert data == {
        "id": "P2",
        "title": "payload",
        "unit": "bytes",
        "aggregate": "median",
        "value": 17e6,
        "runs": [17e6],
        "baseline": {"name": "seed-style", "median": 40e6, "runs": [40e6]},
        "ratio": pytest.approx(0.425),
        "target": {
            "text": "≤ 17.000 MB, ≤ seed-style",
            "at_most": 17e6,
            "at_least": None,
            "beat_baseline": True,
        },
        "verdict": "pass",
        "note": "n",
        "error": "",
        "details": {},
    }
    bare = Figure("P4", "pipeline", "s").as_json()
    assert bare["baseline"] is None
    assert bare["target"] is None
    assert bare["verdict"] is None
    assert bare["value"] is None


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "s", "—"),
        (999, "bytes", "999 B"),
        (18_200, "bytes", "18.2 kB"),
        (17_004_825, "bytes", "17.005 MB"),
        (3.14159, "s", "3.14 s"),
        (59.994, "s", "59.99 s"),
        (185.4, "s", "3 min 05 s"),
        (12.345, "ms", "12.3 ms"),
        (1534.6, "req/s", "1,535 req/s"),
        (0, "count", "0"),
    ],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert bench_report.format_value(value, unit) == text


def figures() -> list[Figure]:
    p1a = Figure("P1a", "rebuild", "s", runs=[4.5], baseline_name="seed", baseline_runs=[5.0])
    p1a.target = Target(at_most=4.0, beat_baseline=True)
    p3 = Figure("P3", "start", "s", runs=[0.5], target=Target(at_most=1.0), note="docker run")
    p4 = Figure("P4", "pipeline", "s", error="nox failed")
    return [p1a, p3, p4]


def test_table_rows() -> None:
    lines = bench_report.table(figures()).splitlines()
    assert lines[0] == "|  | measure | ours | compared with | ratio | target | result |"
    assert lines[1].startswith("| --- |")
    assert lines[2] == (
        "| P1a | rebuild | 4.50 s | 5.00 s (seed) | 0.90x | ≤ 4.00 s, ≤ seed | **miss** |"
    )
    assert lines[3] == "| P3 | start | 0.50 s |  |  | ≤ 1.00 s | pass |"
    assert lines[4] == "| P4 | pipeline | failed |  |  |  | error |"


def doc() -> dict[str, Any]:
    machine = {
        "cores": 2,
        "cpu_model": "Test CPU",
        "memory_bytes": 8 * 2**30,
        "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1",
        "docker_version": "20.10.24",
        "python": "3.11.7",
    }
    return bench_report.document(
        figures=figures(),
        machine=machine,
        command="nox -s bench",
        date="2026-01-02 03:04 UTC",
        revision="abc123",
        duration=612.34,
        settings={"P1 runs per side": 5},
    )


def test_document_shape() -> None:
    data = doc()
    assert data["schema"] == bench_report.SCHEMA
    assert data["duration_s"] == 612.3
    assert data["machine"]["cores"] == 2
    assert [f["id"] for f in data["figures"]] == ["P1a", "P3", "P4"]
    json.dumps(data)  # serialisable as it is


def test_markdown_names_command_machine_and_notes() -> None:
    text = bench_report.markdown(doc(), figures())
    assert text.startswith(bench_report.BEGIN_MARK)
    assert text.rstrip().endswith(bench_report.END_MARK)
    assert "- command: `nox -s bench`" in text
    assert "2 cores (Test CPU), 8.0 GiB RAM, Debian GNU/Linux 12 (bookworm)" in text
    assert "Docker engine 20.10.24" in text
    assert "10 min 12 s in all" in text
    assert "- **P3**: docker run" in text
    assert "- **P4**: nox failed" in text
    assert "| P1a | rebuild |" in text


def test_machine_line_without_memory() -> None:
    assert "RAM unknown" in bench_report.machine_line({"cores": 1, "memory_bytes": None})


def test_splice_keeps_text_outside_the_marks() -> None:
    block = f"{bench_report.BEGIN_MARK}\nnew\n{bench_report.END_MARK}\n"
    assert bench_report.splice(None, block) == f"# Benchmarks\n\n{block}"
    marked = f"{bench_report.BEGIN_MARK}\nold\n{bench_report.END_MARK}\n"
    old = f"# Title\n\nintro\n\n{marked}\nanalysis\n"
    assert bench_report.splice(old, block) == f"# Title\n\nintro\n\n{block}\nanalysis\n"
    assert bench_report.splice("# Hand-written\n", block) == f"# Hand-written\n\n{block}"


# --- layers ----------------------------------------------------------------------------------


def test_new_layers_are_those_the_old_image_lacks() -> None:
    assert bench_layers.new_layers(["a", "b", "c"], ["a", "b", "d", "e"]) == ["d", "e"]
    assert bench_layers.new_layers(["a", "b"], ["a", "b"]) == []
    assert bench_layers.new_layers([], ["a", "b", "a"]) == ["a", "b"]
    assert bench_layers.new_layers(["x"], ["a", "x"]) == ["a"]


def test_stream_sizes_counts_raw_and_gzip_bytes() -> None:
    data = b"deathstar " * 5000
    raw, packed = bench_layers.stream_sizes(io.BytesIO(data))
    assert raw == len(data)
    assert packed == len(gzip.compress(data, compresslevel=6, mtime=0))


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def save_archive(
    path: Path, layers: Mapping[str, bytes], *, oci: bool = False, link_last: bool = False
) -> Path:
    """A `docker save` archive: legacy layout (<n>/layer.tar) or OCI (blobs/sha256/<hex>)."""
    names = [
        f"blobs/sha256/{diff.removeprefix('sha256:')}" if oci else f"{n}/layer.tar"
        for n, diff in enumerate(layers)
    ]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": list(layers)}}).encode()
    manifest = json.dumps([{"Config": "config.json", "Layers": names}]).encode()
    with tarfile.open(path, "w") as archive:
        for n, (name, data) in enumerate(zip(names, layers.values(), strict=True)):
            if link_last and n == len(names) - 1:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, f"../{names[0]}"
                archive.addfile(info)
            else:
                _add(archive, name, data)
        _add(archive, "config.json", config)
        _add(archive, "manifest.json", manifest)
    return path


@pytest.mark.parametrize("oci", [False, True])
def test_measure_saved_sizes_the_wanted_layers(tmp_path: Path, oci: bool) -> None:
    layers = {"sha256:aa": b"a" * 3000, "sha256:bb": b"b" * 700, "sha256:cc": b"c" * 10}
    archive = save_archive(tmp_path / "save.tar", layers, oci=oci)
    measured = bench_layers.measure_saved(archive, ["sha256:bb", "sha256:cc"])
    assert [(m.diff_id, m.size) for m in measured] == [("sha256:bb", 700), ("sha256:cc", 10)]
    assert all(m.gzip_size > 0 for m in measured)


def test_measure_saved_follows_linked_layers(tmp_path: Path) -> None:
    layers = {"sha256:aa": b"a" * 1000, "sha256:dd": b""}
    archive = save_archive(tmp_path / "save.tar", layers, link_last=True)
    assert bench_layers.measure_saved(archive, ["sha256:dd"])[0].size == 1000


def test_measure_saved_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    archive = save_archive(tmp_path / "save.tar", {"sha256:aa": b"a"})
    with pytest.raises(HarnessError, match="has no layer sha256:zz"):
        bench_layers.measure_saved(archive, ["sha256:zz"])
    broken = tmp_path / "broken.tar"
    with tarfile.open(broken, "w") as tar:
        _add(tar, "manifest.json", b"[]")
    with pytest.raises(HarnessError, match="not a docker save archive"):
        bench_layers.measure_saved(broken, [])
    uneven = tmp_path / "uneven.tar"
    with tarfile.open(uneven, "w") as tar:
        _add(tar, "c.json", json.dumps({"rootfs": {"diff_ids": ["sha256:a", "sha256:b"]}}).encode())
        _add(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": ["x"]}]).encode())
    with pytest.raises(HarnessError, match="1 layer files for 2 diff-ids"):
        bench_layers.measure_saved(uneven, [])
    directory = tmp_path / "dir.tar"
    with tarfile.open(directory, "w") as tar:
        tar.addfile(_dir("layer"))
        _add(tar, "c.json", json.dumps({"rootfs": {"diff_ids": ["sha256:a"]}}).encode())
        _add(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": ["layer"]}]).encode())
    with pytest.raises(HarnessError, match="is not a file"):
        bench_layers.measure_saved(directory, ["sha256:a"])
    nameless = tmp_path / "nameless.tar"
    with tarfile.open(nameless, "w") as tar:
        tar.addfile(_dir("manifest.json"))
    with pytest.raises(HarnessError, match=r"has no file manifest\.json"):
        bench_layers.measure_saved(nameless, [])


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


# --- load ------------------------------------------------------------------------------------

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:40001/v1/targets?limit=100
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.52ms    2.10ms  41.00ms   80.00%
    Req/Sec     1.53k   100.00     1.70k    70.00%
  Latency Distribution
     50%    6.10ms
     75%    7.00ms
     90%    8.50ms
     99%   15.30ms
  15300 requests in 10.00s, 230.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1530.12
Transfer/sec:     23.00MB
"""


def test_parse_wrk_reads_throughput_percentiles_and_errors() -> None:
    result = bench_load.parse_wrk(WRK_OUTPUT)
    assert result.tool == "wrk"
    assert result.requests == 15300
    assert result.seconds == 10.0
    assert result.rps == 1530.12
    assert result.p50_ms == pytest.approx(6.1)
    assert result.p99_ms == pytest.approx(15.3)
    assert (result.non_2xx, result.socket_errors, result.errors) == (4, 3, 7)


def test_parse_wrk_units_and_clean_runs() -> None:
    changed = WRK_OUTPUT.replace("6.10ms", "870.00us").replace("15.30ms", "1.20s")
    changed = changed.replace("10.00s,", "1.00m,")
    clean = "\n".join(
        line for line in changed.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    result = bench_load.parse_wrk(clean)
    assert result.p50_ms == pytest.approx(0.87)
    assert result.p99_ms == pytest.approx(1200)
    assert result.seconds == 60
    assert result.errors == 0


def test_parse_wrk_refuses_output_without_summary() -> None:
    with pytest.raises(HarnessError, match="lacks its summary"):
        bench_load.parse_wrk("Running 10s test @ http://127.0.0.1:1/\n")
    with pytest.raises(HarnessError, match="cannot read"):
        bench_load.parse_wrk(WRK_OUTPUT.replace("15.30ms", "15.30xs"))


def test_wrk_command_is_bounded() -> None:
    command = bench_load.wrk_command("http://127.0.0.1:1/x", connections=10, seconds=10)
    assert command[0] == "wrk"
    assert command[command.index("--duration") + 1] == "10s"
    assert command[command.index("--connections") + 1] == "10"
    assert "--latency" in command
    short = bench_load.wrk_command("http://127.0.0.1:1/x", connections=1, seconds=0.2)
    assert short[short.index("--duration") + 1] == "1s"


class Handler(BaseHTTPRequestHandler):
    """A stand-in deathstar: /healthz, POST and GET /v1/targets, /fail answers 500."""

    protocol_version = "HTTP/1.1"
    targets: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.answer(200, {"status": "ok"})
        elif self.path.startswith("/v1/targets"):
            self.answer(200, {"items": self.targets[:100], "total": len(self.targets)})
        else:
            self.answer(500, {"detail": "boom"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.targets.append(body)
        self.answer(201, body)


@contextmanager
def serve(port: int = 0) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[int]:
    Handler.targets = []
    with serve() as running:
        yield running.server_address[1]


def test_python_load_counts_answers_and_latency(server: int) -> None:
    result = bench_load.python_load("127.0.0.1", server, "/healthz", connections=2, seconds=0.3)
    assert result.tool == "python-asyncio"
    assert result.requests > 0
    assert result.rps > 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.errors == 0


def test_python_load_counts_non_2xx(server: int) -> None:
    result = bench_load.python_load("127.0.0.1", server, "/fail", connections=1, seconds=0.2)
    assert result.non_2xx == result.requests > 0


def test_python_load_without_a_server_fails() -> None:
    with pytest.raises(HarnessError, match="no request"):
        bench_load.python_load("127.0.0.1", bench.free_port(), "/", connections=1, seconds=0.1)


def test_python_load_survives_answers_it_cannot_use(tmp_path: Path) -> None:
    """No Content-Length and `Connection: close`: socket errors, then fresh connections."""

    class Odd(Handler):
        def do_GET(self) -> None:
            self.send_response(200)
            if self.path == "/close":
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

    odd = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    thread = threading.Thread(target=odd.serve_forever, daemon=True)
    thread.start()
    try:
        port = odd.server_address[1]
        closing = bench_load.python_load("127.0.0.1", port, "/close", connections=1, seconds=0.2)
        assert closing.requests > 1
        assert closing.errors == 0
        with pytest.raises(HarnessError, match="no request"):
            bench_load.python_load("127.0.0.1", port, "/bare", connections=1, seconds=0.2)
    finally:
        odd.shutdown()
        odd.server_close()
        thread.join()


# --- helpers of the measuring ----------------------------------------------------------------


def test_built_image_ids_reads_the_classic_builders_output() -> None:
    output = (
        "Step 1/9 : FROM python:3.11-slim-bookworm AS deps\n ---> 31ba6b2d6dfa\n"
        "Step 2/9 : RUN true\n ---> Running in 0123456789ab\n"
        "Removing intermediate container 0123456789ab\n ---> 5ee1c0ffee00\n"
        "Step 3/9 : COPY x y\n ---> Using cache\n ---> 31ba6b2d6dfa\n"
        "Successfully built 5ee1c0ffee00\nSuccessfully tagged deathstar-bench-ours:1\n"
    )
    assert bench.built_image_ids(output) == ["31ba6b2d6dfa", "5ee1c0ffee00"]
    assert bench.built_image_ids("#5 DONE 0.1s\n") == []


def test_session_times_from_a_nox_report() -> None:
    report = {
        "result": 1,
        "sessions": [
            {"name": "lint", "result": "success", "duration": 5.123, "signatures": ["lint"]},
            {
                "name": "test",
                "result": "skipped",
                "duration": 12.04,
                "signatures": ["test-3.14", "test(python='3.14')"],
            },
            {"name": "build", "result": "success"},  # a nox without durations
            {"name": "integration", "result": "success", "duration": 61},
        ],
    }
    times = bench.session_times(report)
    assert times == {
        "lint": 5.1,
        "test-3.14": "skipped after 12.0 s",
        "build": "success",
        "integration": 61,
    }
    assert bench.describe_times(times) == (
        "lint 5.1 s, test-3.14 skipped after 12.0 s, build success, integration 61 s"
    )
    assert bench.session_times({}) == {}


def test_short_id() -> None:
    assert bench.short_id("sha256:" + "ab" * 32) == "ab" * 6
    assert bench.short_id("5ee1c0ffee00") == "5ee1c0ffee00"


def test_append_line(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text("x = 1\n")
    bench.append_line(source, "# edit 1")
    assert source.read_text() == "x = 1\n# edit 1\n"
    source.write_text("x = 1")
    bench.append_line(source, "# edit 2")
    assert source.read_text() == "x = 1\n# edit 2\n"


def test_outer_env_drops_the_sessions_venv() -> None:
    environ = {"PATH": "/v/bin:/usr/bin::/bin", "VIRTUAL_ENV": "/v", "HOME": "/root"}
    assert bench.outer_env(environ, "/v") == {"PATH": "/usr/bin:/bin", "HOME": "/root"}


def test_machine_facts_from_proc_files() -> None:
    assert bench.read_meminfo("MemTotal:       24683916 kB\nMemFree: 1 kB\n") == 24683916 * 1024
    assert bench.read_meminfo("") is None
    assert bench.read_cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert bench.read_cpu_model("") is None
    os_release = 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    assert bench.read_os_name(os_release) == "Debian GNU/Linux 12 (bookworm)"
    assert bench.read_os_name("PRETTY_NAME=Plain\n") == "Plain"
    assert bench.read_os_name("") is None
    assert bench._read("/nonexistent/file") == ""


def test_http_request_and_wait_ready(server: int) -> None:
    status, body = bench.http_request(server, "POST", "/v1/targets", {"name": "a"})
    assert status == 201
    assert json.loads(body) == {"name": "a"}
    bench.wait_ready(server, timeout=5)
    with pytest.raises(HarnessError, match="no 200"):
        bench.wait_ready(bench.free_port(), timeout=0.05)


def test_parse_args_defaults_and_the_recorded_command() -> None:
    options = bench.parse_args([])
    assert options == bench.Options(base_image=options.base_image)
    assert options.command == "nox -s bench"
    assert not options.skip_pipeline
    options = bench.parse_args(
        ["--nox-python", "/x/python", "--test-session", "test-3.12", "--", "--skip-pipeline"]
    )
    assert options.skip_pipeline
    assert options.nox_python == "/x/python"
    assert options.test_session == "test-3.12"
    assert options.command == "nox -s bench -- --skip-pipeline"
    assert bench.parse_args(["--runs", "7"]).command == "nox -s bench -- --runs 7"


@pytest.mark.parametrize("args", [["--runs", "0"], ["--load-seconds", "0"], ["--what"]])
def test_parse_args_refuses_nonsense(args: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(args)


def test_settings_say_what_ran() -> None:
    settings = bench.Options(skip_pipeline=True).settings("wrk")
    assert settings["P4 runs"] == 0
    assert settings["P5"].startswith("wrk, 10 connections, 3 x 10 s")


# --- the whole bench against a stand-in engine -----------------------------------------------

BASE = "python:3.11-slim-bookworm"


@dataclass
class Image:
    id: str
    layers: list[str]
    size: int


@dataclass
class FakeEngine:
    """Answers the commands of a bench run; git runs for real."""

    root: Path
    fail: set[str] = field(default_factory=set)
    images: dict[str, Image] = field(default_factory=dict)
    containers: dict[str, ThreadingHTTPServer] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        self.images[BASE] = Image("sha256:31ba6b2d6dfa" + "0" * 52, ["sha256:base"], 100_000_000)
        Handler.targets = []

    def __call__(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 120.0,
        merge: bool = False,
    ) -> str:
        args = list(args)
        self.calls.append(args)
        what = " ".join(args)
        if any(word in what for word in self.fail):
            raise process.CommandError(f"`{what}` failed", f"ERROR: {what} failed\n", 1)
        if args[0] == "git":  # for real, but away from the developer's git configuration
            env = {**GIT_ENV, **(env or {})}
            return process.run(args, cwd=cwd, env=env, timeout=timeout, merge=merge)
        if args[0] == "docker":
            return self.docker(args[1:])
        if args[0] == "wrk":
            return WRK_OUTPUT
        if args[1:3] == ["-m", "build"]:
            assert cwd is not None
            assert env is not None
            assert "SOURCE_DATE_EPOCH" in env
            (cwd / "dist" / "deathstar-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
            return ""
        if args[1:4] == ["-m", "pip", "download"]:
            dest = Path(args[args.index("--dest") + 1])
            dest.mkdir(parents=True)
            (dest / "poetry_core-2.0-py3-none-any.whl").write_bytes(b"tool")
            return ""
        if args[1:3] == ["-m", "nox"]:
            return self.nox(args[3:], cwd)
        raise AssertionError(f"unexpected command {args}")

    def nox(self, args: list[str], cwd: Path | None) -> str:
        assert cwd is not None
        if "--install-only" in args:
            return "nox > Session test-3.11 was successful.\n"
        built = self.add_image(["deathstar:0.1.0"], extra=1)
        record = {
            "image_id": built.id, "tags": ["deathstar:0.1.0"], "version": "0.1.0",
            "commit": "c" * 40, "revision": "c" * 40, "base_image": BASE,
            "size": built.size, "base_size": 100_000_000, "config_digest": built.id,
        }  # fmt: skip
        (cwd / "dist").mkdir(exist_ok=True)
        (cwd / "dist" / "image.json").write_text(json.dumps(record))
        report = {"sessions": [{"name": "lint", "result": "success", "duration": 5.0}]}
        Path(args[args.index("--report") + 1]).write_text(json.dumps(report))
        return f" ---> {built.id[7:19]}\nSuccessfully built {built.id[7:19]}\n"

    def add_image(self, tags: list[str], extra: int) -> Image:
        self.count += 1
        layers = [*self.images[BASE].layers, *(f"sha256:{self.count}-{n}" for n in range(extra))]
        image = Image(f"sha256:{self.count:064x}", layers, 100_000_000 + 1000 * self.count)
        for ref in [image.id, *tags]:
            self.images[ref] = image
        return image

    def docker(self, args: list[str]) -> str:  # noqa: PLR0911 - one answer per command
        command = args[0]
        if command == "version":
            return "20.10.99\n"
        if command == "images":
            return self.images[BASE].id + "\n"
        if command == "image":
            ref = args[-1]
            if ref not in self.images:
                raise process.CommandError(f"no such image {ref}", "", 1)
            image = self.images[ref]
            answers = {
                "{{.Id}}": image.id,
                "{{.Size}}": str(image.size),
                "{{json .RootFS.Layers}}": json.dumps(image.layers),
            }
            return answers[args[3]] + "\n"
        if command == "build":
            tag = args[args.index("--tag") + 1]
            image = self.add_image([tag], extra=2 if "seed" in tag else 1)
            short = image.id[7:19]
            return f" ---> 31ba6b2d6dfa\n ---> {short}\nSuccessfully built {short}\n"
        if command == "save":
            image = self.images[args[-1]]
            contents = {layer: layer.encode() * 100 for layer in image.layers}
            save_archive(Path(args[args.index("--output") + 1]), contents)
            return ""
        if command == "run":
            port = int(args[args.index("--publish") + 1].split(":")[1])
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            cid = f"container{len(self.containers)}"
            self.containers[cid] = server
            return cid + "\n"
        if command == "rm":
            for cid in args[3:]:
                self.containers[cid].shutdown()
                self.containers[cid].server_close()
            return ""
        if command == "rmi":
            for ref in args[1:]:
                self.images.pop(ref, None)
            return ""
        if command == "tag":
            self.images[args[2]] = self.images[args[1]]
        return ""  # ps, tag


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "deathstar").mkdir(parents=True)
    (root / "deathstar" / "app.py").write_text("app = None\n")
    (root / "bench").mkdir()
    (root / "bench" / "seed-style.Dockerfile").write_text("FROM scratch\n")
    (root / ".dockerignore").write_text("*\n")
    (root / ".gitignore").write_text("/dist/\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "deathstar"\nversion = "0.1.0"\n'
        '[build-system]\nrequires = ["poetry-core>=2.0,<3"]\n'
    )
    (root / "dist" / "wheelhouse").mkdir(parents=True)
    (root / "dist" / "wheelhouse" / "fastapi-1-py3-none-any.whl").write_bytes(b"w" * 1000)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    (root / "untracked.txt").write_text("in the snapshot too\n")
    return root


QUICK = [
    "--runs", "2", "--start-runs", "1", "--load-runs", "1", "--load-seconds", "1",
    "--env-runs", "1", "--load-tool", "wrk",
]  # fmt: skip


def run_bench(project: Path, engine: FakeEngine, *args: str) -> tuple[int, dict[str, Any]]:
    out = project / "out"
    code = bench.main(
        ["--nox-python", sys.executable, "--", *QUICK, "--output-dir", str(out), *args],
        runner=engine,
        root=project,
    )
    data = json.loads((out / "results.json").read_text()) if code == 0 else {}
    return code, data


def test_bench_measures_everything_and_cleans_up(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(project)
    previous = Image("sha256:" + "9" * 64, ["sha256:base"], 1)
    engine.images["deathstar:0.1.0"] = engine.images[previous.id] = previous
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["id"]: f for f in data["figures"]}
    assert list(figures) == [
        "P1a", "P1b", "P1b.raw", "P2", "P3", "P5", "P5.p50", "P5.p99", "P5.err", "P6", "P4",
        "P4.reuse",
    ]  # fmt: skip
    assert len(figures["P1a"]["runs"]) == len(figures["P1a"]["baseline"]["runs"]) == 2
    # one new layer per rebuild for ours, two for the seed: 100 copies of a 10-byte diff-id each
    assert figures["P1b.raw"]["runs"] == [1000, 1000]
    assert figures["P1b.raw"]["baseline"]["runs"] == [2000, 2000]
    # P1b is what a push sends: gzip of the same layers, far smaller than 100 repeated ids
    assert 0 < figures["P1b"]["runs"][0] < 1000
    assert figures["P1b"]["target"] is not None
    # the stand-in's n-th image is n kB over the base; the seed's minus its 1 kB wheelhouse
    assert figures["P2"]["runs"] == [3000, 5000]
    assert figures["P2"]["baseline"]["runs"] == [4000 - 1000, 6000 - 1000]
    assert figures["P5"]["value"] == 1530.12
    assert figures["P5.err"]["value"] == 7
    assert figures["P5.err"]["verdict"] == "miss"
    assert figures["P4"]["error"] == ""
    assert figures["P4"]["note"].endswith("; run 1: lint 5 s")
    assert figures["P4.reuse"]["details"] == {"sessions per run": [{"lint": 5.0}]}
    assert len(figures["P6"]["runs"]) == len(figures["P6"]["baseline"]["runs"]) == 1
    assert data["command"].startswith("nox -s bench -- --runs 2")
    assert data["machine"]["docker_version"] == "20.10.99"
    assert len(Handler.targets) == 100
    # the edits happened in clones, the checkout is untouched
    assert (project / "deathstar" / "app.py").read_text() == "app = None\n"
    # builds: ours via python -m build + docker build of ./Dockerfile, the seed offline too
    builds = [c for c in engine.calls if c[:2] == ["docker", "build"]]
    assert all("--network" in c and c[c.index("--network") + 1] == "none" for c in builds)
    assert any("seed-style.Dockerfile" in " ".join(c) for c in builds)
    # nothing of the run is left: bench tags gone, the pipeline's tag points back
    assert not [ref for ref in engine.images if ref.startswith("deathstar-bench")]
    assert engine.images["deathstar:0.1.0"].id == "sha256:" + "9" * 64
    assert ["docker", "tag", "sha256:" + "9" * 64, "deathstar:0.1.0"] in engine.calls
    assert not [c for c in engine.calls if c[:2] == ["docker", "rmi"] and "31ba6b2d6dfa" in c]
    markdown = (project / "out" / "RESULTS.md").read_text()
    assert markdown.startswith("# Benchmarks\n")
    assert "| P1a |" in markdown
    printed = capsys.readouterr().out
    assert "| P5.p99 |" in printed
    assert "wrote" in printed


def test_bench_keeps_going_when_steps_fail(project: Path) -> None:
    engine = FakeEngine(project, fail={"virtualenv", "docker build --network none --pull=false"})
    engine.fail.add("--no-error-on-missing-interpreters")
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["id"]: f for f in data["figures"]}
    assert list(figures) == ["P1", "P6", "P4", "P4.reuse"]  # no images: no P3 and no P5
    assert "failed" in figures["P1"]["error"]
    assert "virtualenv backend failed: ERROR:" in figures["P6"]["note"]
    assert "failed" in figures["P4"]["error"]
    assert figures["P4.reuse"]["error"].startswith("not run")


def test_bench_reports_a_failing_uv_backend(project: Path) -> None:
    engine = FakeEngine(project, fail={"-db uv"})
    engine.fail.add("docker build")
    code, data = run_bench(project, engine, "--skip-pipeline")
    assert code == 0
    p6 = next(f for f in data["figures"] if f["id"] == "P6")
    assert p6["error"].startswith("the uv backend failed")
    assert not [f for f in data["figures"] if f["id"].startswith("P4")]


def test_bench_refuses_without_engine_base_image_or_wheelhouse(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_bench(project, FakeEngine(project, fail={"docker version"}))[0] == 1
    assert "no Docker engine answers" in capsys.readouterr().err
    engine = FakeEngine(project)
    del engine.images[BASE]
    assert run_bench(project, engine)[0] == 1
    assert f"the base image {BASE} is missing" in capsys.readouterr().err
    (project / "bench" / "seed-style.Dockerfile").unlink()
    assert run_bench(project, FakeEngine(project))[0] == 1
    assert "seed-style.Dockerfile is missing" in capsys.readouterr().err
    for wheel in (project / "dist" / "wheelhouse").iterdir():
        wheel.unlink()
    assert run_bench(project, FakeEngine(project))[0] == 1
    assert "run `nox -s build` first" in capsys.readouterr().err


def test_cleanup_goes_on_when_a_step_fails(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(project, fail={"docker ps"})
    cleaner = bench.Bench(bench.Options(), root=project, runner=engine)
    cleaner.tags = ["deathstar-bench-ours:1"]
    engine.images["deathstar-bench-ours:1"] = Image("sha256:1", [], 1)
    cleaner.cleanup()
    assert "cleanup of containers incomplete" in capsys.readouterr().out
    assert "deathstar-bench-ours:1" not in engine.images
    assert not cleaner.work.exists()
