"""The book's structure, and proof that every chapter was executed.

These tests execute nothing. The executed smoke copies they inspect come from

    python scripts/build_book.py --profile smoke --out _build/smoke

which CI runs before ``pytest tests _build/smoke --nbval-lax --nbval-current-env``
(nbval then runs the smoke copies again and compares the cells marked
with the tag ``nbval-check-output``, which the page does not show).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from helpers import build_book_script

ROOT = Path(__file__).resolve().parents[1]
SMOKE_DIR = ROOT / "_build" / "smoke"
SMOKE_CMD = "python scripts/build_book.py --profile smoke --out _build/smoke"
SECTIONS = ["What you will learn", "Prerequisites", "Summary", "Exercises"]
MAX_NOTEBOOK_BYTES = 2_000_000


build_book = build_book_script()
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
TOC_FILES = list(build_book.toc_files(TOC))
CHAPTERS = build_book.notebook_chapters(ROOT)
IDS = [md.stem for md in CHAPTERS]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def cell_signature(nb, skip_injected=False):
    """(type, source, tags) of every cell: what a pair must agree on."""
    cells = [c for c in nb.cells if not (
        skip_injected and "injected-parameters" in c.metadata.get("tags", ()))]
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in cells]


# ------------------------------------------------------------------ table of contents
def test_toc_structure():
    assert TOC["format"] == "jb-book"
    assert TOC_FILES[:2] == ["book/intro", "book/notation"], TOC_FILES[:2]
    assert CHAPTERS, "no notebook chapter found in _toc.yml"


@pytest.mark.parametrize("entry", TOC_FILES)
def test_toc_file_exists(entry):
    stem = ROOT / Path(entry).with_suffix("")
    found = [s for s in (".md", ".ipynb") if Path(str(stem) + s).exists()]
    assert found, f"_toc.yml lists {entry!r}, but neither {entry}.md nor .ipynb exists"


def test_config():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert "book/[0-9]*.md" in cfg["exclude_patterns"], \
        "the .md twins of notebook chapters must be excluded from Sphinx"
    for md in CHAPTERS:  # every notebook chapter is excluded by that pattern
        assert re.fullmatch(r"[0-9].*\.md", md.name), md.name


# ---------------------------------------------------------------------- chapters
@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_pair_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `jupytext --sync {md.name}`"
    text, paired = jupytext.read(md), jupytext.read(ipynb)
    assert cell_signature(paired) == cell_signature(text), (
        f"{ipynb.name} differs from {md.name}: run `jupytext --sync book/{md.name}` "
        f"or `python scripts/build_book.py --update-notebooks --only {md.stem}`")
    assert paired.metadata.get("jupytext", {}).get("formats") == "ipynb,md:myst"
    assert paired.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_paired_notebook_holds_clean_outputs(md):
    """The book renders the stored outputs: every code cell must have run."""
    nb = jupytext.read(md.with_suffix(".ipynb"))
    missing = [i for i, c in enumerate(code_cells(nb)) if c.execution_count is None]
    assert not missing, (f"{md.stem}.ipynb: code cells {missing} have no outputs; run "
                         "`python scripts/build_book.py --update-notebooks --only "
                         f"{md.stem}`")
    assert "papermill" not in nb.metadata
    errors = [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors
    size = md.with_suffix(".ipynb").stat().st_size
    assert size <= MAX_NOTEBOOK_BYTES, f"{md.stem}.ipynb is {size:,d} bytes"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_sections(md):
    headings = re.findall(r"^##\s+(.+?)\s*$", md.read_text(encoding="utf-8"),
                          re.MULTILINE)
    positions = []
    for section in SECTIONS:
        assert section in headings, f"{md.name} lacks a '## {section}' section"
        positions.append(headings.index(section))
    assert positions == sorted(positions), f"{md.name}: sections out of order"
    assert headings[-1] == "Exercises", f"{md.name} must end with its exercises"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_install_then_parameters_cell(md):
    cells = code_cells(jupytext.read(md))
    install, parameters = cells[0], cells[1]
    assert "google.colab" in install.source, "the first code cell installs on Colab"
    assert "remove-input" in install.metadata.get("tags", [])
    pip_lines = [line for line in install.source.splitlines() if "pip install" in line]
    assert pip_lines and not re.search(r"\b(torch|numpy)\b", " ".join(pip_lines)), \
        "the Colab install cell must install srvp without re-pinning torch or numpy"
    # the extras the chapter needs (scripts/colab_check.py runs it without them)
    extras = re.search(r'"srvp\[([a-z,]+)\] @ \{SRVP_SOURCE\}"', pip_lines[0])
    assert extras, "install srvp[EXTRAS] from SRVP_SOURCE (SRVP_INSTALL or GitHub)"
    text = md.read_text()
    needs = {"viz"} | ({"metrics"} if "load_lpips" in text else set()) | \
        ({"video"} if "released_kth" in text else set())
    assert needs <= set(extras.group(1).split(",")), (md.name, extras.group(1))
    assert "SRVP_INSTALL" in install.source
    assert "parameters" in parameters.metadata.get("tags", []), \
        "the first code cell after the install cell must be tagged `parameters`"
    assigned = {t.id: ast.literal_eval(node.value)
                for node in ast.parse(parameters.source).body
                if isinstance(node, ast.Assign) for t in node.targets}
    assert assigned.get("profile") == build_book.DEFAULT_PROFILE, assigned


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_literalincludes_resolve(md):
    """Every `{literalinclude}` names an existing file and Python object."""
    text = md.read_text(encoding="utf-8")
    for path, options in re.findall(
            r"```\{literalinclude\}\s+(\S+)\n((?::[^\n]*\n)*)", text):
        target = (md.parent / path).resolve()
        assert target.exists(), f"{md.name}: {path} does not exist"
        match = re.search(r":pyobject:\s*(\S+)", options)
        if match:
            names = _python_objects(target)
            assert match.group(1) in names, f"{md.name}: {path} has no {match.group(1)}"


def _python_objects(path):
    """Dotted names of the classes and functions of a module (two levels)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
            for child in getattr(node, "body", []):
                if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                    names.add(f"{node.name}.{child.name}")
    return names


def test_no_local_paths():
    """No page or notebook mentions where this copy of the repository lives."""
    local = {str(ROOT), str(Path.home())} - {"/"}
    files = [ROOT / "_config.yml", ROOT / "_toc.yml", *ROOT.glob("book/*.md"),
             *ROOT.glob("book/*.ipynb")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for prefix in local:
            assert prefix not in text, f"{path.name} contains a local path"


# --------------------------------------------------------------- executed copies
@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_smoke_copy_executed(md):
    path = SMOKE_DIR / f"{md.stem}.ipynb"
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `{SMOKE_CMD}` first")
    nb = nbformat.read(path, as_version=4)
    run = nb.metadata.get("papermill", {})
    assert run.get("parameters") == {"profile": "smoke"}, (
        f"{path.name} was not run with profile='smoke': run `{SMOKE_CMD}`")
    assert not run.get("exception"), f"{path.name} raised an exception"
    expected = cell_signature(jupytext.read(md))
    assert cell_signature(nb, skip_injected=True) == expected, (
        f"{path.name} is older than {md.name}: run `{SMOKE_CMD}`")
    not_run = [i for i, c in enumerate(code_cells(nb)) if c.execution_count is None]
    assert not not_run, f"{path.name}: code cells {not_run} did not run"


@pytest.mark.parametrize("md", [m for m in CHAPTERS if "shipped_run(" in m.read_text()],
                         ids=lambda m: m.stem)
def test_stored_outputs_name_the_shipped_weights(md):
    """A chapter that loads a shipped model prints the digest of its weights
    (srvp.book.shipped_run); the outputs stored in its notebook must name the
    weights shipped today, or they were made with another model."""
    from srvp.book import weights_digest

    text = "".join(o.get("text", "") for c in code_cells(jupytext.read(
        md.with_suffix(".ipynb"))) for o in c.outputs)
    found = re.findall(r"(\w+): ([\w.]+) sha256 ([0-9a-f]{12})", text)
    assert found, (f"{md.stem}.ipynb: no stored output names the shipped weights; "
                   f"run `python scripts/build_book.py --update-notebooks --only "
                   f"{md.stem}`")
    for run, name, digest in found:
        assert digest == weights_digest(ROOT / "book" / "runs" / run, name), (
            f"{md.stem}.ipynb shows outputs of another {run}/{name} than book/runs/"
            f"{run}/{name}: re-execute it")


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_header_states_the_running_time(md):
    """Readers see how long a chapter takes before they run it (measured with
    `make notebooks` and written under the Colab badge)."""
    head = md.read_text(encoding="utf-8").split("## What you will learn")[0]
    assert re.search(r"\*Running time: about \d+ (seconds|minutes) on two CPU cores",
                     head), f"{md.name}: no measured running time under its title"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_every_exercise_has_a_hidden_solution(md):
    """Each numbered exercise holds one solution in a dropdown admonition, nested
    in its list item (rendered folded on the web page)."""
    exercises = md.read_text(encoding="utf-8").split("\n## Exercises\n")[1]
    items = re.split(r"^\d+\. ", exercises, flags=re.MULTILINE)[1:]
    assert items, f"{md.name}: no numbered exercises"
    for n, item in enumerate(items, 1):
        solutions = re.findall(r"^   :::\{admonition\} Solution\n   :class: dropdown\n",
                               item, re.MULTILINE)
        assert len(solutions) == 1, (f"{md.name}, exercise {n}: {len(solutions)} "
                                     "solutions (one dropdown admonition expected)")


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_solutions_report_runs_that_were_made(md):
    """A solution that runs something says what the run gave: none leaves the
    reader with a run that was never made, and one that says what "should"
    happen also gives a number or an equation."""
    exercises = md.read_text(encoding="utf-8").split("\n## Exercises\n")[1]
    items = re.split(r"^\d+\. ", exercises, flags=re.MULTILINE)[1:]
    for n, item in enumerate(items, 1):
        solution = item.split(":::{admonition} Solution", 1)[1]
        prose = re.sub(r"```.*?```", "", solution, flags=re.S)  # the text, not code
        unmade = re.search(r"(was|were) not (made|run|evaluated)[^.]*(solution|book)",
                           prose)
        assert not unmade, f"{md.name}, exercise {n}: {unmade.group(0)!r}"
        assert "should" not in prose or re.search(r"\d|\$", prose), (
            f"{md.name}, exercise {n}: says what should happen, and gives no number")


MAX_PRINTED = 90  # characters: wider lines scroll sideways in the page's output box


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_stored_outputs_read_on_a_page(md):
    """Printed text stays within the width of the page, and a cell's printed
    text is one box (scripts/build_book.py joins consecutive stream outputs)."""
    nb = jupytext.read(md.with_suffix(".ipynb"))
    for i, cell in enumerate(code_cells(nb)):
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        for a, b in zip(cell.outputs, cell.outputs[1:]):
            split = a.output_type == b.output_type == "stream" and a.name == b.name
            assert not split, f"{md.stem}, code cell {i + 1}: text split over two boxes"
        wide = [line for o in streams if o.name == "stdout"
                for line in o.text.splitlines() if len(line) > MAX_PRINTED]
        assert not wide, f"{md.stem}, code cell {i + 1}: {wide[0]!r} is too wide"


def _outputs_text(nb) -> str:
    text = ""
    for cell in code_cells(nb):
        for out in cell.outputs:
            text += out.get("text", "")
            text += "".join(v for k, v in out.get("data", {}).items()
                            if k.startswith("text/") and isinstance(v, str))
    return text


def _history_values() -> set:
    """Every number of book/runs/history.csv, as printed with 1 to 3 decimals."""
    import csv

    values = set()
    with open(ROOT / "book" / "runs" / "history.csv", newline="") as f:
        for row in csv.DictReader(f):
            for cell in row.values():
                try:
                    x = float(cell)
                except (TypeError, ValueError):
                    continue
                values |= {f"{x:.{d}f}" for d in (1, 2, 3)} | \
                    {f"{abs(x):.{d}f}" for d in (1, 2, 3)}
    return values


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_decibels_in_the_prose_come_from_outputs_or_files(md):
    """A PSNR (or PSNR difference) written in a chapter's prose is printed by
    one of its cells, or is a number of book/runs/history.csv: prose cannot
    drift from the shipped runs without this failing."""
    text = md.read_text(encoding="utf-8")
    prose = re.sub(r"```\{code-cell\}.*?```", "", text, flags=re.S)
    pairs = re.findall(r"(\d+\.\d+) ± (\d+\.\d+) ?dB", prose)  # mean ± interval
    quoted = set(re.findall(r"(\d+\.\d+) ?dB", prose)) | {x for p in pairs for x in p}
    known = _outputs_text(jupytext.read(md.with_suffix(".ipynb")))
    files = _history_values()
    missing = sorted(n for n in quoted if n not in known and n not in files)
    assert not missing, (f"{md.name}: {missing} dB in the prose, printed by no cell "
                         "and absent from book/runs/history.csv")
