"""The layout's rules, checked: what the noxfile may import, and facts that have one owner."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from harness import ROOT
from harness.image import build

# What the noxfile may reach: plumbing, the image package and the result cache (stdlib only).
ALLOWED = ("harness", "harness.core", "harness.image", "harness.results", "harness.registry")
# Issue 19: the noxfile imports at most this many harness modules.
MAX_NOXFILE_MODULES = 6


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports, at any depth (a function's imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str) -> Path | None:
    """Our own source file for ``name``, or None when it is not ours (or a plain attribute)."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def noxfile_import_closure() -> dict[str, set[str]]:
    """Every module reachable from noxfile.py through our own files, with who imports it."""
    seen: dict[str, set[str]] = {}
    pending = [("noxfile", ROOT / "noxfile.py")]
    visited: set[Path] = set()
    while pending:
        importer, path = pending.pop()
        if path in visited:
            continue
        visited.add(path)
        for name in imported_modules(path):
            seen.setdefault(name, set()).add(importer)
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                found = module_file(prefix)
                if found is not None:
                    pending.append((prefix, found))
    return seen


def is_allowed(name: str) -> bool:
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or top in {"__future__", "nox"}:
        return True
    if top != "harness":
        return False
    # harness, HarnessError, harness.core/image/results.*; never release or bench.
    return (
        name in ALLOWED
        or name.startswith(("harness.core.", "harness.image.", "harness.results."))
        or (module_file(name) is None)
    )


def test_the_noxfile_imports_only_the_standard_library_and_the_core() -> None:
    closure = noxfile_import_closure()
    assert "harness.core" in closure or any(n.startswith("harness.core.") for n in closure)
    outside = {name: sorted(by) for name, by in closure.items() if not is_allowed(name)}
    assert outside == {}, f"outside the standard library, harness.core and .image: {outside}"


def harness_modules(path: Path) -> set[str]:
    """The harness modules a file imports: ``from harness.core import git`` is harness.core.git,
    ``from harness import HarnessError`` is harness."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.partition(".")[0] == "harness")
        elif (
            isinstance(node, ast.ImportFrom) and (node.module or "").partition(".")[0] == "harness"
        ):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if module_file(full) is not None else str(node.module))
    return names


def test_the_noxfile_imports_few_harness_modules() -> None:
    found = harness_modules(ROOT / "noxfile.py")
    assert "harness.image.sessions" in found
    assert len(found) <= MAX_NOXFILE_MODULES, sorted(found)


def test_the_module_count_sees_every_module(tmp_path: Path) -> None:
    noxfile = tmp_path / "noxfile.py"
    noxfile.write_text(
        "from harness import HarnessError\nfrom harness.core import git, locks\n"
        "import harness.image.records\nfrom harness.image.sbom import write\n"
    )
    assert harness_modules(noxfile) == {
        "harness", "harness.core.git", "harness.core.locks", "harness.image.records",
        "harness.image.sbom",
    }  # fmt: skip


def test_the_closure_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The check must be able to fail: a core module importing a third-party package.
    module = tmp_path / "m.py"
    module.write_text(
        "import requests\nfrom harness.release import gates\n\ndef f():\n    import yaml\n"
    )
    names = imported_modules(module)
    assert {"requests", "harness.release", "yaml"} <= names
    assert not is_allowed("requests")
    assert not is_allowed("harness.release")
    assert not is_allowed("harness.bench.report")
    assert is_allowed("harness.image.records")
    assert is_allowed("json")


def test_every_copy_of_the_base_image_default_agrees() -> None:
    # Dockerfile and .ci/provision cannot import Python; they keep copies this test pins.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    provision = (ROOT / ".ci" / "provision").read_text(encoding="utf-8")
    assert f"ARG BASE_IMAGE={build.DEFAULT_BASE_IMAGE}\n" in dockerfile
    default = re.escape(build.DEFAULT_BASE_IMAGE)
    provision_default = rf'^readonly BASE_IMAGE="\$\{{DEATHSTAR_BASE_IMAGE:-{default}\}}"$'
    assert re.search(provision_default, provision, re.MULTILINE), (
        "provision's BASE_IMAGE default differs from harness.image.build.DEFAULT_BASE_IMAGE"
    )


def test_the_dependencies_bytecode_is_not_checked_against_its_source() -> None:
    # pip compiles checked-hash .pyc under SOURCE_DATE_EPOCH: every start then hashes sources.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "install --no-compile" in dockerfile
    assert "compileall -q --invalidation-mode unchecked-hash /opt/venv/lib" in dockerfile


def test_lint_runs_the_one_list_of_hooks_with_the_sessions_tools() -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    hooks = re.findall(r"^\s+- id: (\S+)$", config, re.MULTILINE)
    assert set(hooks) >= {
        "ruff-check", "ruff-format", "mypy", "hadolint", "shellcheck",
        "check-github-workflows", "zizmor",
    }  # fmt: skip
    # Tools come from PATH (the lint session's venv), never a venv the session did not install.
    entries = re.findall(r"^\s+entry: (\S+)", config, re.MULTILINE)
    assert entries
    assert all("/" not in entry for entry in entries)
    assert re.findall(r"^\s+language: (\S+)", config, re.MULTILINE) == ["system"] * len(hooks)
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert '"pre-commit", "run", "--all-files"' in noxfile


HTTP_CLIENTS = {"requests", "urllib3", "httpx", "http.client", "urllib.request", "aiohttp"}


def test_no_release_or_rebuild_code_speaks_http_to_a_registry() -> None:
    """The registry is docker's (login, push) and skopeo's (reads): no client of our own."""
    modules = [
        ROOT / "harness" / "registry.py",
        *(ROOT / "harness" / "release").rglob("*.py"),
        *(ROOT / "harness" / "rebuild").rglob("*.py"),
    ]
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        found = {name for name in imported if name.split(".")[0] in {"requests", "urllib3",
                 "httpx", "aiohttp"} or name in HTTP_CLIENTS}  # fmt: skip
        assert found == set(), f"{path.relative_to(ROOT)} imports {sorted(found)}"
