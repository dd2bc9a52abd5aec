"""The release workflow's trust split: no job that runs the tests (or installs what they need)
can get the signing identity (an OIDC token) or the registry credentials, and the job that can
signs only an image it built from source itself and found equal to the one integration verified.

The workflow is read as text, job by job (the test venv has no YAML parser); the checks are about
what each job runs and holds, whatever the jobs are called.
"""

from __future__ import annotations

import re

from harness import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
TEST_SESSIONS = ("test", "integration", "lint")  # what runs the suites and their dependencies
_JOB = re.compile(r"^  (?P<id>[A-Za-z_][\w-]*):\s*$")
_NOX = re.compile(r"(?:^|[\s;&|])nox(?P<args>(?:[ \t]+[^\s;&|]+)*)")


def jobs(text: str) -> dict[str, str]:
    """Each job's lines, by job id: the blocks under the top-level ``jobs:`` mapping."""
    found: dict[str, str] = {}
    current = None
    for line in text.split("\njobs:\n", 1)[1].splitlines():
        if re.match(r"\S", line):
            break  # a top-level key after jobs
        if match := _JOB.match(line):
            current = match["id"]
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


def commands(job: str) -> str:
    """The job without its comments: what it runs and holds."""
    lines = (re.sub(r"(^|\s)#.*", "", line) for line in job.splitlines())
    return "\n".join(lines)


def sessions(job: str) -> list[list[str]]:
    """The sessions of each nox command the job runs; [] for a bare `nox` (the pipeline)."""
    runs = []
    for match in _NOX.finditer(commands(job)):
        args = match["args"].split()
        args = args[: args.index("--")] if "--" in args else args
        named: list[str] = []
        for index, arg in enumerate(args):
            if arg in ("-s", "--session"):
                rest = args[index + 1 :]
                stop = next((i for i, a in enumerate(rest) if a.startswith("-")), len(rest))
                named += rest[:stop]
        runs.append(named)
    return runs


def runs_tests(job: str) -> bool:
    if "pytest" in commands(job) or "requirements/dev.txt" in commands(job):
        return True
    return any(
        not named or any(s.startswith(TEST_SESSIONS) for s in named) for named in sessions(job)
    )


def privileged(job: str) -> bool:
    """Whether a step of the job can get the OIDC token, push, or read a secret."""
    held = r"id-token:\s*write|packages:\s*write|write-all|secrets\."
    return bool(re.search(held, commands(job)))


def test_the_workflow_grants_nothing_by_default() -> None:
    assert re.search(r"^permissions:\s*\{\}\s*$", WORKFLOW.read_text(), re.MULTILINE)


def test_no_job_that_runs_tests_can_sign_or_push() -> None:
    """PoC: one job held id-token: write and ran `nox` (unit and integration tests and every
    dependency they import), so any of them could get a Fulcio certificate as the release."""
    found = jobs(WORKFLOW.read_text())
    assert any(runs_tests(job) for job in found.values()), "the release runs no tests at all"
    both = [name for name, job in found.items() if runs_tests(job) and privileged(job)]
    assert both == [], f"{both} run tests and hold the signing identity or registry credentials"


def test_the_signing_job_pushes_an_image_it_built_against_the_verified_record() -> None:
    found = jobs(WORKFLOW.read_text())
    [(name, publish)] = [(n, j) for n, j in found.items() if re.search(r"id-token:\s*write", j)]
    assert ["push"] in sessions(publish)
    built = [s for s in sessions(publish) if "image" in s]
    assert built, f"{name} does not build the image it pushes from source"
    tested = [n for n, j in found.items() if runs_tests(j)]
    needs = re.search(r"^    needs:\s*\[?([^\]\n]*)", publish, re.MULTILINE)
    assert needs is not None
    assert set(tested) <= {n.strip() for n in needs[1].split(",")}
    # The image ID integration verified comes from the testing job, and nothing else does.
    assert re.search(rf"needs\.({'|'.join(tested)})\.outputs\.", publish)
    assert "verified.json" in publish


CI = ROOT / ".github" / "workflows" / "ci.yml"


def test_a_release_never_builds_with_a_build_cache() -> None:
    text = commands(WORKFLOW.read_text(encoding="utf-8"))
    assert "DEATHSTAR_BUILD_CACHE" not in text
    assert "--cache-from" not in text


def test_ci_builds_its_image_with_the_cache_that_only_main_writes() -> None:
    found = jobs(CI.read_text(encoding="utf-8"))
    readers = [job for job in found.values() if any("image" in run for run in sessions(job))]
    assert any("DEATHSTAR_BUILD_CACHE:" in commands(job) for job in readers)
    for name, job in found.items():
        if re.search(r"DEATHSTAR_BUILD_CACHE_WRITE:\s*\"?1|packages:\s*write", commands(job)):
            # A job that can write packages runs only for a push to main, on merged code; the
            # one that writes the build cache runs no tests either.
            assert "github.event_name == 'push' && github.ref == 'refs/heads/main'" in job, name
            if "DEATHSTAR_BUILD_CACHE_WRITE" in job:
                assert not runs_tests(job), name
