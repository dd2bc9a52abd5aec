"""Which files can change a unit-test module's result: the inputs its cache key covers.

A module's inputs are itself, the conftest.py files above it, the static import closure over our
own Python modules, and every file that is not such a module (data: lock, pyproject, noxfile,
Dockerfile, workflows, docs...). A module that can run code the import graph does not show (it
starts a child process, imports by name at run time) or reads the repository by path (``ROOT``,
``Path(__file__)``) depends on every file but the other test modules. Standard library only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

PACKAGES = ("deathstar", "harness", "tests")
RELATIVE_PATH = re.compile(r"[\w.-]+(/[\w.-]+)+/?")  # deathstar/cli.py, harness/core/
TEST_MODULE = re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$")
# What starts a process or runs code by name: its child or its code is invisible to imports.
OPAQUE_MODULES = {"subprocess", "multiprocessing", "pty", "runpy", "concurrent.futures.process"}
OPAQUE_ATTRIBUTES = re.compile(
    r"^(os\.(exec\w*|spawn\w*|posix_spawn\w*|system|popen|fork\w*)|sys\.executable"
    r"|asyncio\.create_subprocess_\w+|importlib\.(import_module|reload|util\.\w+))$"
)
OPAQUE_CALLS = {
    "exec",
    "eval",
    "__import__",
    "import_module",
    "spec_from_file_location",
    "ProcessPoolExecutor",
}
PATH_CALLS = {"Path", "PurePath", "dirname", "abspath", "realpath"}
DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class Facts:
    """What a source file's syntax tells: the modules it can import, and whether it runs code
    or reads the repository where no import shows it."""

    imports: frozenset[str]
    starts: bool  # a child process, or code run by name
    names_repository: bool  # ROOT, Path(__file__): a test that may read any file
    paths: frozenset[str] = frozenset()  # relative paths it names: files it may read as data


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def scan(source: str, module: str, is_package: bool = False) -> Facts:
    """The facts of ``source``, the text of the module named ``module``. Dotted string
    literals count as imports (``monkeypatch.setattr("harness.core.git.run", ...)``)."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    imports: set[str] = set()
    starts = names_repository = False
    paths: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            imports.add(base)
            imports.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute):
            starts |= OPAQUE_ATTRIBUTES.match(_dotted(node)) is not None
        elif isinstance(node, ast.Name):
            names_repository |= node.id == "ROOT" and isinstance(node.ctx, ast.Load)
        elif isinstance(node, ast.Call):
            called = _dotted(node.func).rpartition(".")[2]
            starts |= called in OPAQUE_CALLS
            names_repository |= called in PATH_CALLS and any(
                isinstance(arg, ast.Name) and arg.id == "__file__" for arg in node.args
            )
        elif isinstance(node, ast.Constant) and DOTTED_NAME.fullmatch(str(node.value)):
            imports.add(str(node.value))
        elif isinstance(node, ast.Constant) and RELATIVE_PATH.fullmatch(str(node.value)):
            paths.add(str(node.value).rstrip("/"))
    starts |= "concurrent.futures.ProcessPoolExecutor" in imports or any(
        name in OPAQUE_MODULES or name.startswith(tuple(f"{m}." for m in OPAQUE_MODULES))
        for name in imports
    )
    return Facts(frozenset(imports), starts, names_repository, frozenset(paths))


def is_ours(path: str) -> bool:
    """A Python module of our packages: an input only where some import can reach it."""
    parts = PurePosixPath(path).parts
    return len(parts) > 1 and parts[0] in PACKAGES and path.endswith(".py")


def test_modules(files: Iterable[str]) -> list[str]:
    return sorted(f for f in files if f.startswith("tests/") and TEST_MODULE.search(f))


def module_name(path: str) -> tuple[str, bool]:
    """``tests/test_x.py`` -> (``tests.test_x``, False); a package's ``__init__.py`` -> True."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def conftests(path: str, files: Iterable[str]) -> list[str]:
    """The conftest.py files pytest loads for the test module ``path``."""
    candidates = (
        PurePosixPath(folder, "conftest.py").as_posix() for folder in PurePosixPath(path).parents
    )
    return sorted(set(candidates) & set(files))


class Graph:
    """The import graph of our modules among ``files``; ``read`` gives a file's text."""

    def __init__(self, files: Iterable[str], read: Callable[[str], str]) -> None:
        self.files = sorted(files)
        self.by_name = {module_name(f)[0]: f for f in self.files if is_ours(f)}
        self._read = read

    @cache  # noqa: B019 (one Graph per session run: the cache goes with it)
    def facts(self, path: str) -> Facts:
        """A file that does not parse (or decode) is opaque: it may do anything."""
        name, is_package = module_name(path)
        try:
            return scan(self._read(path), name, is_package)
        except (SyntaxError, ValueError):
            return Facts(frozenset(), starts=True, names_repository=True)

    def is_opaque(self, path: str) -> bool:
        """Runs what no import shows, or (a test's own file) names the repository: our library
        reads only data files by ROOT (uv.lock, requirements/), which every module has."""
        facts = self.facts(path)
        return facts.starts or (facts.names_repository and path.startswith("tests/"))

    def files_of(self, name: str) -> list[str]:
        """Our files that importing ``name`` runs: the module and each package above it."""
        parts = name.split(".")
        found = (self.by_name.get(".".join(parts[:depth])) for depth in range(1, len(parts) + 1))
        return [path for path in found if path is not None]

    def closure(self, roots: Iterable[str]) -> set[str]:
        """Our files reachable from ``roots`` through imports, the roots included."""
        seen: set[str] = set()
        pending = list(roots)
        while pending:
            path = pending.pop()
            if path in seen:
                continue
            seen.add(path)
            for name in self.facts(path).imports:
                pending.extend(self.files_of(name))
        return seen

    def inputs(self, module: str) -> tuple[list[str], list[str]]:
        """(inputs, closure) of the test module ``module``: every file that can change its
        result, and the files its imports reach (where its import-time coverage comes from)."""
        reached = self.closure([module, *conftests(module, self.files)])
        named = {p for path in reached for p in self.facts(path).paths}
        data = {f for f in self.files if not is_ours(f) or f in named or f.startswith(
            tuple(f"{p}/" for p in named))}  # fmt: skip
        if any(self.is_opaque(path) for path in reached):
            others = set(test_modules(self.files)) - reached
            return sorted(set(self.files) - others), sorted(reached)
        return sorted(reached | data), sorted(reached)
