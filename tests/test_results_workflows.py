"""CI restores and saves the results store; the release workflow reads no cache at all."""

from __future__ import annotations

import re

from harness import ROOT
from harness.results.remote import open_shared
from harness.results.store import store_root
from tests.test_release_workflow import commands, jobs

CI = ROOT / ".github" / "workflows" / "ci.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
CACHE_STEP = re.compile(r"- uses: actions/cache@(?P<pin>\S+) # v\S+\n(?P<with>(?: {8,}.*\n)+)")


def cache_steps(job: str) -> list[dict[str, str]]:
    steps = []
    for match in CACHE_STEP.finditer(job):
        fields = dict(re.findall(r"^\s+(\S+): (.*)$", match["with"], re.MULTILINE))
        steps.append({"pin": match["pin"], **fields})
    return steps


def test_ci_reuses_the_store_of_earlier_runs_in_the_lint_and_test_jobs() -> None:
    found = jobs(CI.read_text(encoding="utf-8"))
    # The store's default place, as a runner's home spells it.
    default = "~/" + store_root({"HOME": "/home/runner"}).relative_to("/home/runner").as_posix()
    for name in ("lint", "test"):
        (step,) = cache_steps(found[name])
        assert re.fullmatch(r"[0-9a-f]{40}", step["pin"]), "pinned by commit, like every action"
        assert step["path"] == default
        prefix = step["restore-keys"]
        assert prefix.startswith("results-${{ runner.os }}-")
        assert prefix.endswith("-")
        # Unique per run (entries are immutable), found by its prefix from main's runs.
        assert step["key"] == prefix + "${{ github.run_id }}-${{ github.run_attempt }}"
        job = commands(found[name])
        assert job.index("actions/cache@") < job.index("nox ")  # restored before nox runs


def test_the_release_workflow_reads_no_cache() -> None:
    text = RELEASE.read_text(encoding="utf-8")
    assert "actions/cache" not in text
    workflow_env = text.split("\nenv:\n", 1)[1].split("\n\n", 1)[0]
    assert '  DEATHSTAR_CACHE: "off"' in workflow_env.splitlines()
    assert text.index("\nenv:\n") < text.index("\njobs:\n")  # the workflow's, every job's


def test_ci_reads_the_shared_results_and_writes_them_only_from_main() -> None:
    found = jobs(CI.read_text(encoding="utf-8"))
    main_only = "if: github.event_name == 'push' && github.ref == 'refs/heads/main'"
    for name in ("lint", "test", "results"):
        job = commands(found[name])
        assert "      DEATHSTAR_RESULTS_CACHE: ghcr.io/${{ github.repository }}/results\n" in job
        # docker's credentials, which oras reads, are there before nox runs; never in argv.
        assert job.index("docker login ghcr.io") < job.index("nox ")
        assert "--password-stdin" in job
        assert "sha256sum --check" in job  # the oras package, pinned by hash
    for name in ("lint", "test"):  # they run a pull request's code: read only
        assert "packages: read" in commands(found[name])
        assert "DEATHSTAR_RESULTS_CACHE_WRITE" not in found[name]
    writer = commands(found["results"])
    assert '      DEATHSTAR_RESULTS_CACHE_WRITE: "1"\n' in writer
    assert "packages: write" in writer
    assert main_only in writer
    for name, job in found.items():
        if name not in ("lint", "test", "results"):
            assert "DEATHSTAR_RESULTS_CACHE" not in job, name
        if "packages: write" in commands(job):
            assert main_only in job, f"{name}: only a push to main may write packages"


def test_the_release_workflow_reads_no_shared_results() -> None:
    text = RELEASE.read_text(encoding="utf-8")
    assert "DEATHSTAR_RESULTS_CACHE" not in text
    # DEATHSTAR_CACHE=off, which it sets for every job, turns the shared tier off too.
    environ = {"DEATHSTAR_CACHE": "off", "DEATHSTAR_RESULTS_CACHE": "ghcr.io/o/r/results"}
    assert open_shared(environ, ROOT) is None
