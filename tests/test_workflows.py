"""The publishing workflow runs what CI runs: the README's two commands, and the
book lands where the workflow publishes it."""
import re
import shlex
import subprocess
from pathlib import Path

import yaml
from helpers import build_book_script

ROOT = Path(__file__).resolve().parents[1]
build_book = build_book_script()
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _steps():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return jobs, [s for job in jobs.values() for s in job.get("steps", [])]


def _make_dry_run(target):
    """The commands ``make TARGET`` runs (``make -n``: printed, not run)."""
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]


def _build_book_args(target):
    """The arguments ``make TARGET`` gives scripts/build_book.py, as its own
    parser reads them."""
    calls = [cmd[cmd.index("scripts/build_book.py") + 1:]
             for cmd in _make_dry_run(target) if "scripts/build_book.py" in cmd]
    assert len(calls) == 1, calls
    return build_book.make_parser().parse_args(calls[0])


def test_ci_runs_the_readme_test_command_and_nothing_else():
    done = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")])  # it parses
    assert done.returncode == 0
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[-1].strip() == "make test"
    shown = re.findall(r"^make (\w+)", (ROOT / "README.md").read_text(), re.M)
    assert {"test", "book"} <= set(shown)
    for target in shown:  # every make command the README shows exists
        assert _make_dry_run(target)


def test_workflow_runs_the_ci_command_then_the_book_and_publishes_it():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML reads `on:` as True
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"]["pages"] == "write"
    jobs, steps = _steps()
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert runs == ["bash .ci/run", "make book"], runs
    upload = [s for s in steps if s.get("uses", "").startswith(
        "actions/upload-pages-artifact")]
    assert upload
    book = _build_book_args("book")  # what `make book` renders, and where
    assert not book.no_render and not book.only
    assert ROOT / upload[0]["with"]["path"] == book.html
    assert any(s.get("uses", "").startswith("actions/deploy-pages")
               for s in jobs["deploy"]["steps"])
    assert jobs["deploy"]["needs"] == "build"


def test_make_test_renders_the_smoke_copies_it_checks():
    """CI executes the chapters in the smoke profile, renders their HTML (warnings
    as errors), then runs nbval on the executed copies."""
    args = _build_book_args("test")
    assert args.profile == "smoke" and not args.no_render and not args.only
    pytest_call = next(cmd for cmd in _make_dry_run("test") if "pytest" in cmd)
    assert str(args.out) in pytest_call and "--nbval-lax" in pytest_call
