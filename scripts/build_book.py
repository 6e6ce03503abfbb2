"""Execute the notebook chapters of the book, then render it.

Each notebook chapter is a MyST markdown file ``book/NN_name.md`` (the source of
truth) paired with ``book/NN_name.ipynb``. This script converts the markdown to a
notebook, executes it with papermill under a profile, and

- with ``--out DIR`` (CI): writes the executed copies to ``DIR/NN_name.ipynb`` and
  leaves ``book/`` untouched;
- without ``--out``: stores the outputs in ``book/NN_name.ipynb`` in place, then
  builds the HTML book with ``jupyter-book build . -W -n --keep-going`` (unless
  ``--no-render``).

Examples::

    python scripts/build_book.py --profile smoke --out _build/smoke   # CI, seconds
    python scripts/build_book.py                                      # cpu profile
    python scripts/build_book.py --only 03_residual_update --no-render
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"  # the value of `profile` in every chapter's parameters cell
KERNEL = "python3"


def toc_files(toc: dict) -> Iterator[str]:
    """Every ``file:`` entry of a ``_toc.yml`` mapping, in reading order."""
    if "root" in toc:
        yield toc["root"]
    for key in ("parts", "chapters", "sections"):
        for entry in toc.get(key) or []:
            if "file" in entry:
                yield entry["file"]
            yield from toc_files({k: v for k, v in entry.items() if k != "file"})


def has_jupytext_header(path: Path) -> bool:
    """True for a MyST notebook: a front matter with a ``jupytext`` section."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return False
    end = text.find("\n---", 4)
    if end < 0:
        return False
    header = yaml.safe_load(text[4:end]) or {}
    return isinstance(header, dict) and "jupytext" in header


def notebook_chapters(root: Path = ROOT) -> list[Path]:
    """The ``.md`` sources of the notebook chapters listed in ``_toc.yml``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    chapters = []
    for entry in toc_files(toc):
        md = root / (str(Path(entry).with_suffix("")) + ".md")
        if md.exists() and has_jupytext_header(md):
            chapters.append(md)
    return chapters


def clean_copy(source: nbformat.NotebookNode, executed: nbformat.NotebookNode,
               previous: nbformat.NotebookNode | None = None
               ) -> nbformat.NotebookNode:
    """The source notebook with the outputs of ``executed`` and nothing else.

    Papermill adds run metadata (timings, status) to the notebook and its cells;
    keeping it out of ``book/`` keeps the pair in sync and the diffs small. Cells
    whose type and source are unchanged keep their id from ``previous``.
    """
    if len(source.cells) != len(executed.cells):
        raise RuntimeError("executed notebook has a different number of cells")
    out = nbformat.from_dict(source)
    if previous is not None:
        old_ids: dict = {}
        for cell in previous.cells:
            old_ids.setdefault((cell.cell_type, cell.source), []).append(cell.get("id"))
        for cell in out.cells:
            ids = old_ids.get((cell.cell_type, cell.source))
            if ids and ids[0]:
                cell.id = ids.pop(0)
    for cell, run in zip(out.cells, executed.cells):
        if cell.cell_type == "code":
            cell.outputs = run.outputs
            cell.execution_count = run.execution_count
    if "language_info" in executed.metadata:
        out.metadata["language_info"] = executed.metadata["language_info"]
    return out


def run_chapter(md: Path, profile: str, out_dir: Path | None) -> float:
    """Execute one chapter; return the seconds it took. Raises on failure."""
    source = jupytext.read(md)
    parameters = {"profile": profile} if profile != DEFAULT_PROFILE else None
    if out_dir is not None:
        target = out_dir / (md.stem + ".ipynb")
    else:  # keep a failed run out of book/, for inspection
        target = ROOT / "_build" / "failed" / (md.stem + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    executed = papermill.execute_notebook(
        source, str(target), parameters=parameters, kernel_name=KERNEL,
        cwd=str(md.parent), progress_bar=False, log_output=False)
    seconds = time.perf_counter() - start
    if out_dir is None:
        paired = md.with_suffix(".ipynb")
        previous = jupytext.read(paired) if paired.exists() else None
        jupytext.write(clean_copy(source, executed, previous), paired, fmt="ipynb")
        target.unlink()
    return seconds


def render() -> int:
    """Build the HTML book with warnings as errors; return the exit status."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book",
           "build", ".", "-W", "-n", "--keep-going"]
    print("$ jupyter-book " + " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    status = subprocess.call(cmd, cwd=ROOT)
    print(f"render: exit {status} in {time.perf_counter() - start:.1f} s", flush=True)
    return status


def select(chapters: list[Path], only: list[str] | None) -> list[Path]:
    if not only:
        return chapters
    wanted = {Path(name).stem for name in only}
    unknown = wanted - {md.stem for md in chapters}
    if unknown:
        names = ", ".join(md.stem for md in chapters)
        raise SystemExit(f"unknown chapter(s) {sorted(unknown)}; notebook chapters "
                         f"in _toc.yml: {names}")
    return [md for md in chapters if md.stem in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Execute the book's notebook chapters with papermill, then "
                    "render the book with jupyter-book.")
    parser.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                        help="value of `profile` in each chapter "
                             "(default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write executed notebooks to DIR and leave book/ "
                             "untouched (no rendering)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these chapters, e.g. 02_architecture")
    parser.add_argument("--no-render", action="store_true",
                        help="do not build the HTML book after executing")
    args = parser.parse_args(argv)

    chapters = select(notebook_chapters(), args.only)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    total = time.perf_counter()
    for i, md in enumerate(chapters, 1):
        print(f"[{i}/{len(chapters)}] {md.stem} (profile {args.profile}) ...",
              flush=True)
        try:
            seconds = run_chapter(md, args.profile, args.out)
        except Exception as err:  # noqa: BLE001 - report every failure, then fail
            failed.append(md.stem)
            print(f"[{i}/{len(chapters)}] {md.stem} FAILED: "
                  f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)
            continue
        print(f"[{i}/{len(chapters)}] {md.stem} ok in {seconds:.1f} s", flush=True)
    print(f"executed {len(chapters) - len(failed)}/{len(chapters)} chapters in "
          f"{time.perf_counter() - total:.1f} s", flush=True)
    if failed:
        print("failed chapters: " + ", ".join(failed), file=sys.stderr)
        return 1
    if args.out is None and not args.no_render:
        return 1 if render() else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
