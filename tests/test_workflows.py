"""The publishing workflow runs what CI runs: the README's two commands."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _steps():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return jobs, [s for job in jobs.values() for s in job.get("steps", [])]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[-1].strip() == "make test"
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make book" in (ROOT / "README.md").read_text()


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
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert any(s.get("uses", "").startswith("actions/deploy-pages")
               for s in jobs["deploy"]["steps"])
    assert jobs["deploy"]["needs"] == "build"


def test_make_book_renders_where_the_workflow_publishes():
    makefile = (ROOT / "Makefile").read_text()
    book = re.search(r"^book:.*\n\t(.+)$", makefile, re.M).group(1)
    assert "build_book.py" in book and "--out" not in book and "--html" not in book
    script = (ROOT / "scripts" / "build_book.py").read_text()
    assert 'default=ROOT / "_build" / "html"' in script  # the --html default
    test = re.search(r"^test:.*\n((?:\t.+\n)+)", makefile, re.M).group(1)
    assert "--html" in test and "--no-render" not in test  # CI renders the HTML
