"""The bench's one-line edits: no two bench runs make the same one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.test_harness_bench_run import (
    FakeEngine,
    project,  # noqa: F401 - the fixture
    run_bench,
)


@dataclass(kw_only=True)
class EditRecorder(FakeEngine):
    """The bench's stand-in engine, noting the edited file's last line at each build."""

    edits: list[str] = field(default_factory=list)

    def docker(self, args: list[str]) -> str:
        if args[0] == "build":
            edited = Path(args[-1]) / "deathstar" / "app.py"
            self.edits.append(edited.read_text(encoding="utf-8").splitlines()[-1])
        return super().docker(args)


def test_no_two_bench_runs_make_the_same_edit(project: Path) -> None:  # noqa: F811
    # An edit an earlier bench made is in the build cache: a side would be timed on a cache hit.
    first, second = EditRecorder(), EditRecorder()
    assert run_bench(project, first, "--runs", "2", "--skip-pipeline")[0] == 0
    assert run_bench(project, second, "--runs", "2", "--skip-pipeline")[0] == 0
    edits = [
        {line for line in engine.edits if line.startswith("# bench edit")}
        for engine in (first, second)
    ]
    assert len(edits[0]) == len(edits[1]) == 2  # one per run, the same for both sides
    assert not edits[0] & edits[1]
