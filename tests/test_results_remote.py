"""The shared results tier: CI pushes, another clone pulls; every hostile answer is a miss.

A stand-in for oras keeps pushed artifacts in memory and serves them back as a registry would,
so a test can make it send whatever a hostile registry could.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.results import keys, remote, sessions
from harness.results.remote import ENTRY_NAME, TITLE, Remote, RemoteError
from harness.results.sessions import FileSet, Results
from harness.results.store import Store, document
from tests.gitrepo import git
from tests.test_results_sessions import FakeSession

KEY = "ab" * 32
WHEEL = "dist/app-1.0-py3-none-any.whl"
CI_ENV = {"PATH": "/opt/ci/bin:/usr/bin", "HOME": "/home/runner", "USER": "runner",
          "LANG": "C.UTF-8", "CI": "true", "GITHUB_RUN_ID": "1234"}  # fmt: skip
LAPTOP_ENV = {"PATH": "/usr/local/bin:/usr/bin", "HOME": "/home/dev", "USER": "dev",
              "LANG": "C.UTF-8", "EDITOR": "vim"}  # fmt: skip


class Registry:
    """oras and a registry behind it: ``tags`` maps a key to (manifest bytes, blobs by title)."""

    def __init__(self) -> None:
        self.tags: dict[str, tuple[bytes, dict[str, bytes]]] = {}
        self.calls: list[list[str]] = []
        self.failure = ""

    def __call__(self, args: Sequence[str], cwd: Path) -> bytes:
        self.calls.append(list(args))
        if self.failure:
            raise RemoteError(self.failure)
        if args[0] == "push":
            ref, layers = (
                args[args.index("--artifact-type") + 2],
                args[args.index("--artifact-type") + 3 :],
            )
            files = {name: (cwd / name).read_bytes() for name, _ in (x.split(":") for x in layers)}
            kinds = dict(x.split(":", 1) for x in layers)
            self.serve(ref.rsplit(":", 1)[1], files, kinds)
            return b""
        if args[:2] == ["manifest", "fetch"]:
            tag = args[-1].rsplit(":", 1)[1]
            if tag not in self.tags:
                raise RemoteError(f"{args[-1]}: not found")
            return self.tags[tag][0]
        digest = args[-1].rsplit("@sha256:", 1)[1]  # pull, by the manifest's digest
        by_digest = {hashlib.sha256(manifest).hexdigest(): b for manifest, b in self.tags.values()}
        blobs = by_digest[digest]
        out = cwd / args[args.index("-o") + 1]
        out.mkdir()
        for name, data in blobs.items():
            (out / name).write_bytes(data)
        return b""

    def serve(self, tag: str, files: dict[str, bytes], kinds: dict[str, str] | None = None,
              **manifest: Any) -> None:  # fmt: skip
        kinds = kinds or {
            n: remote.ENTRY_TYPE if n == ENTRY_NAME else remote.OUTPUT_TYPE for n in files
        }
        layers = [
            {"mediaType": kinds[name], "size": len(data), "annotations": {TITLE: name},
             "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
        ]  # fmt: skip
        body = {"mediaType": remote.MANIFEST_TYPE, "artifactType": remote.ARTIFACT_TYPE,
                "layers": layers, **manifest}  # fmt: skip
        self.tags[tag] = (json.dumps(body).encode(), files)


@pytest.fixture
def registry() -> Registry:
    return Registry()


def store(tmp_path: Path, registry: Registry, checkout: Path, write: bool = False) -> Store:
    tier = Remote("127.0.0.1:5000/results", checkout, write, registry)
    return Store(tmp_path / f"store-{checkout.name}", 1_000_000, tier)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served_entry(registry: Registry, entry: dict[str, Any], outputs: dict[str, bytes],
                 key: str = KEY) -> None:  # fmt: skip
    files = {ENTRY_NAME: document(key, entry), **{digest(d): d for d in outputs.values()}}
    registry.serve(KEY, files)


# --- CI pushes, a clone elsewhere pulls --------------------------------------------------


@pytest.fixture(autouse=True)
def fixed_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "interpreter", lambda python: f"cpython {python}")
    monkeypatch.setattr(sessions, "tool_versions", lambda run=None: {"uv": "uv 0.9.0"})


def test_a_clone_elsewhere_with_another_home_and_path_hits_what_ci_pushed(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ci = tmp_path / "runner" / "work" / "repo"
    ci.mkdir(parents=True)
    git(ci, "init", "-q")
    for name, text in {
        ".gitignore": "dist/\n",
        "noxfile.py": "#\n",
        "src/app.py": "a = 1\n",
    }.items():
        (ci / name).parent.mkdir(parents=True, exist_ok=True)
        (ci / name).write_text(text)
    git(ci, "add", ".")
    git(ci, "commit", "-q", "-m", "one")
    laptop = tmp_path / "home" / "dev" / "src" / "deathstar"
    git(tmp_path, "clone", "-q", str(ci), str(laptop))
    (ci / "dist").mkdir()
    (ci / WHEEL).write_bytes(b"wheel bytes")
    monkeypatch.setenv("GITHUB_RUN_ID", "1234")  # where the record says it was made
    files = FileSet(include=("src",))
    pushed = Results(ci, store(tmp_path, registry, ci, write=True), CI_ENV)
    cached = pushed.lookup(FakeSession("build"), files)
    cached.record("app-1.0", [ci / WHEEL])
    assert list(registry.tags) == [cached.key]

    session = FakeSession("build")
    pulled = Results(laptop, store(tmp_path, registry, laptop), LAPTOP_ENV).lookup(session, files)
    assert pulled.hit
    assert session.logged[0].startswith("build: cached pass from CI run 1234, 20")
    assert (laptop / WHEEL).read_bytes() == b"wheel bytes"  # the output travelled, checked
    registry.failure = "dial tcp: connection refused"  # now stored locally: no registry needed
    assert Results(laptop, pulled.store, LAPTOP_ENV).lookup(FakeSession("build"), files).hit


def test_without_write_nothing_is_pushed(tmp_path: Path, registry: Registry) -> None:
    local = store(tmp_path, registry, tmp_path)
    assert local.put(KEY, {"summary": "ok"})
    assert registry.calls == []
    assert registry.tags == {}


def test_a_pull_checks_each_output_then_writes_it(tmp_path: Path, registry: Registry) -> None:
    entry = {"output_paths": [WHEEL], "outputs": {WHEEL: digest(b"w")}}
    served_entry(registry, entry, {WHEEL: b"w"})
    local = store(tmp_path, registry, tmp_path)
    assert local.get(KEY) == entry
    assert (tmp_path / WHEEL).read_bytes() == b"w"
    assert KEY in local.remote.pulled  # type: ignore[union-attr]
    assert local.path(KEY).is_file()  # stored locally


# --- a hostile registry: every answer below is a miss, and nothing is written --------------


@pytest.mark.parametrize(
    "name", ["../evil", "dist/../../evil", "/etc/evil", "src/app.py", "dist/a\x1b[2J", "dist//x"]
)
def test_an_output_outside_dist_is_a_miss(tmp_path: Path, registry: Registry, name: str) -> None:
    served_entry(registry, {"outputs": {name: digest(b"x")}}, {name: b"x"})
    assert store(tmp_path, registry, tmp_path / "co").get(KEY) is None
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "co").exists()


def test_an_output_whose_bytes_do_not_match_is_a_miss(tmp_path: Path, registry: Registry) -> None:
    files = {ENTRY_NAME: document(KEY, {"outputs": {WHEEL: digest(b"w")}}), digest(b"w"): b"W"}
    registry.serve(KEY, files)
    assert store(tmp_path, registry, tmp_path).get(KEY) is None
    assert not (tmp_path / "dist").exists()


def test_an_entry_for_another_key_is_a_miss(tmp_path: Path, registry: Registry) -> None:
    registry.serve(KEY, {ENTRY_NAME: document("cd" * 32, {"summary": "ok"})})
    assert store(tmp_path, registry, tmp_path).get(KEY) is None


def test_a_blob_larger_than_the_store_is_never_pulled(tmp_path: Path, registry: Registry) -> None:
    served_entry(registry, {"summary": "ok"}, {})
    manifest, files = registry.tags[KEY]
    body = json.loads(manifest)
    body["layers"][0]["size"] = 2_000_000  # the store holds 1 MB
    registry.tags[KEY] = (json.dumps(body).encode(), files)
    assert store(tmp_path, registry, tmp_path).get(KEY) is None
    assert [call[0] for call in registry.calls] == ["manifest"]


@pytest.mark.parametrize(
    "manifest",
    [{"artifactType": "application/vnd.other"}, {"layers": "x"}, {"mediaType": "text/plain"}],
)
def test_a_manifest_not_of_a_results_entry_is_a_miss(
    tmp_path: Path, registry: Registry, manifest: dict[str, Any]
) -> None:
    registry.serve(KEY, {ENTRY_NAME: document(KEY, {"summary": "ok"})}, **manifest)
    assert store(tmp_path, registry, tmp_path).get(KEY) is None


def test_a_layer_oras_would_unpack_is_a_miss(tmp_path: Path, registry: Registry) -> None:
    served_entry(registry, {"summary": "ok"}, {})
    manifest, files = registry.tags[KEY]
    body = json.loads(manifest)
    body["layers"][0]["annotations"]["io.deis.oras.content.unpack"] = "true"
    registry.tags[KEY] = (json.dumps(body).encode(), files)
    assert store(tmp_path, registry, tmp_path).get(KEY) is None


def test_a_symlink_among_the_pulled_files_is_a_miss(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"w")
    served_entry(registry, {"outputs": {WHEEL: digest(b"w")}}, {WHEEL: b"w"})
    serve = Registry.__call__

    def linking(self: Registry, args: Sequence[str], cwd: Path) -> bytes:
        answer = serve(self, args, cwd)
        if args[0] == "pull":  # a registry cannot do this through oras; refused all the same
            (cwd / "out" / digest(b"w")).unlink()
            (cwd / "out" / digest(b"w")).symlink_to(secret)
        return answer

    monkeypatch.setattr(Registry, "__call__", linking)
    assert store(tmp_path, registry, tmp_path).get(KEY) is None


def test_control_characters_from_a_registry_are_never_printed() -> None:
    entry = {"summary": "ok\x1b]0;pwned\x07", "origin": "CI run 1\x1b[2J", "recorded_at": "x"}
    line = sessions.hit_line("lint", KEY, entry, pulled=True)
    assert "\x1b" not in line
    assert line.startswith("lint: cached pass from the shared cache, ?")


# --- failures and switches -------------------------------------------------------------------


def test_an_unreachable_registry_is_a_warning_and_a_miss(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.failure = "dial tcp 127.0.0.1:5000: connection refused"
    assert store(tmp_path, registry, tmp_path).get(KEY) is None
    assert "could not read 127.0.0.1:5000/results: dial tcp" in capsys.readouterr().err
    local = store(tmp_path, registry, tmp_path)
    registry.failure = ""
    assert local.get(KEY) is None  # not found: a quiet miss
    assert capsys.readouterr().err == ""
    registry.failure = "dial tcp: i/o timeout"
    assert local.get(KEY) is None
    assert local.get("cd" * 32) is None  # after one failure, no more waiting on it
    assert len(registry.calls) == 3
    assert capsys.readouterr().err.count("could not read") == 1


def test_a_failed_push_is_a_warning_and_the_local_record_stands(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.failure = "denied: permission_denied: write_package"
    local = store(tmp_path, registry, tmp_path, write=True)
    assert local.put(KEY, {"summary": "ok"})
    assert "could not push to" in capsys.readouterr().err
    assert local.get(KEY) == {"summary": "ok"}


def test_the_release_switch_turns_the_shared_tier_off_too(tmp_path: Path) -> None:
    environ = {"DEATHSTAR_RESULTS_CACHE": "ghcr.io/o/r/results", "DEATHSTAR_CACHE_DIR": "/c"}
    opened = remote.open_shared(environ, tmp_path)
    assert opened is not None
    assert isinstance(opened.remote, Remote)
    assert remote.open_shared({**environ, "DEATHSTAR_CACHE": "off"}, tmp_path) is None


def test_plain_http_only_for_loopback_and_a_bad_name_is_local_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert Remote("127.0.0.1:5000/results", tmp_path).options == ["--plain-http"]
    assert Remote("ghcr.io/o/r/results", tmp_path).options == []
    opened = remote.open_shared({"DEATHSTAR_RESULTS_CACHE": "Not A Registry"}, tmp_path)
    assert opened is not None
    assert opened.remote is None
    assert "is not used" in capsys.readouterr().err


def test_an_entry_records_where_it_was_made() -> None:
    assert remote.origin({"GITHUB_RUN_ID": "1234"}) == "CI run 1234"
    assert remote.origin({"GITHUB_RUN_ID": "1; rm -rf"}) == "a developer machine"
    assert remote.origin({}) == "a developer machine"


# --- review: what a pull may write, and how the manifest is read -------------------------


@pytest.mark.parametrize(
    ("declared", "name"),
    [([], "dist/verified.json"), (["dist/verified.json"], "dist/verified.json"),
     (["dist/image.json"], "dist/image.json"), (["dist"], "dist"), (["dist/a"], "dist/b")],
)  # fmt: skip
def test_a_pull_writes_only_declared_outputs_and_never_the_records(
    tmp_path: Path, registry: Registry, declared: list[str], name: str
) -> None:
    served_entry(
        registry, {"output_paths": declared, "outputs": {name: digest(b"x")}}, {name: b"x"}
    )
    assert store(tmp_path, registry, tmp_path / "co").get(KEY) is None
    assert not (tmp_path / "co").exists()


@pytest.mark.parametrize("twist", ["Layers", "size"])
def test_a_manifest_read_two_ways_or_with_a_negative_size_is_never_pulled(
    tmp_path: Path, registry: Registry, twist: str
) -> None:
    served_entry(registry, {"summary": "ok"}, {})
    manifest, files = registry.tags[KEY]
    body = json.loads(manifest)
    if twist == "Layers":  # Go's JSON reads the last key that matches ignoring case
        body["Layers"] = [*body["layers"], {**body["layers"][0], "size": 10**12}]
    else:
        body["layers"][0]["size"] = -(10**12)
    registry.tags[KEY] = (json.dumps(body).encode(), files)
    assert store(tmp_path, registry, tmp_path).get(KEY) is None
    assert [call[0] for call in registry.calls] == ["manifest"]


def test_a_registry_error_that_says_not_found_is_still_a_warning(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.failure = "Error response from registry: unknown: upstream not found, retry"
    local = store(tmp_path, registry, tmp_path)
    assert local.get(KEY) is None
    assert "could not read" in capsys.readouterr().err
    assert local.get("cd" * 32) is None
    assert len(registry.calls) == 1  # after a real error, this process stops asking
