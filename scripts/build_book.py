"""Execute the notebook chapters of the book, then render it.

Each notebook chapter is a MyST markdown file ``book/NN_name.md`` (the source of
truth) paired with ``book/NN_name.ipynb`` (the outputs that GitHub, Colab and the
web page show). This script converts the markdown to a notebook, executes it with
papermill under a profile, writes the executed copy to ``--out DIR`` (default
``_build/executed/PROFILE``), and renders the HTML book from those copies with
warnings as errors (``jupyter-book build -W -n``) into ``--html DIR`` (default
``_build/html``). The tracked files are left as they are: the script checks it.

The chapters find the book's files through ``$SRVP_BOOK_DIR``, which this script
sets to ``book/``, and MNIST through ``$SRVP_MNIST_DIR``, which it settles once,
before any chapter runs: the folder the user set (it must hold the files), else
``../shared/data/mnist`` beside the repository when it holds them (the same lookup
as the tests, see ``tests/conftest.py``), else ``book/data/mnist``, where the
package downloads the four standard files (about 11 MB, MD5-checked) the first
time. Offline without the files, the script stops there with one message.

``--update-notebooks`` (maintainers, after a change to a chapter or to the shipped
models) stores the outputs in ``book/NN_name.ipynb`` instead and renders from them.

Examples::

    python scripts/build_book.py                                  # make book
    python scripts/build_book.py --profile smoke --out _build/smoke \
        --html _build/smoke_html                                  # make test (CI)
    python scripts/build_book.py --update-notebooks               # make notebooks
    python scripts/build_book.py --only 03_residual_update --no-render
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offline_assets  # noqa: E402 - a module beside this script

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"  # the value of `profile` in every chapter's parameters cell
KERNEL = "python3"


MNIST_BESIDE = ROOT.parent / "shared" / "data" / "mnist"
MNIST_DOWNLOAD = BOOK / "data" / "mnist"
MNIST_HELP = ("set SRVP_MNIST_DIR to a folder holding the MNIST files "
              "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz), or run the "
              "command again where the internet is reachable: it downloads them "
              "once into book/data/mnist")


def mnist_folder() -> tuple[Path, str]:
    """The MNIST folder the chapters read and how it was found (see the module's
    docstring); downloads the files into ``book/data/mnist`` when no folder holds
    them. Raises ``SystemExit`` with one message when that is impossible."""
    from srvp.data.mnist_idx import download_mnist, find_split_files

    def complete(folder: Path) -> bool:
        return all(find_split_files(folder, split) for split in ("train", "test"))

    chosen = os.environ.get("SRVP_MNIST_DIR")
    if chosen:
        if not complete(Path(chosen)):
            raise SystemExit(f"error: SRVP_MNIST_DIR={chosen} lacks MNIST's training "
                             f"or test files: {MNIST_HELP}")
        return Path(chosen), "from $SRVP_MNIST_DIR"
    if complete(MNIST_BESIDE):
        return MNIST_BESIDE, "found beside the repository"
    if complete(MNIST_DOWNLOAD):
        return MNIST_DOWNLOAD, "downloaded before"
    print(f"MNIST: downloading the four standard files (about 11 MB) into "
          f"{MNIST_DOWNLOAD} ...", flush=True)
    try:
        download_mnist(MNIST_DOWNLOAD)
    except OSError as err:  # MNISTNotFoundError is an OSError
        raise SystemExit(f"error: the chapters need MNIST and it could not be "
                         f"downloaded ({type(err).__name__}): {MNIST_HELP}") from None
    return MNIST_DOWNLOAD, "downloaded now"


def chapter_env() -> dict[str, str]:
    """The variables through which the chapters find their files (see the
    module's docstring): ``SRVP_BOOK_DIR`` and ``SRVP_MNIST_DIR``. Prints where
    MNIST comes from; raises ``SystemExit`` when it is nowhere."""
    mnist, how = mnist_folder()
    print(f"MNIST: {mnist} ({how})", flush=True)
    return {"SRVP_BOOK_DIR": str(BOOK), "SRVP_MNIST_DIR": str(mnist)}


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


def merge_streams(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Join each run of consecutive stdout (or stderr) outputs of a cell into one,
    so that a cell's printed text shows as one box on the web page."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if out.output_type == "stream" and prev is not None and \
                    prev.output_type == "stream" and prev.name == out.name:
                prev.text += out.text
            else:
                merged.append(out)
        cell.outputs = merged
    return nb


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
    merge_streams(executed)
    # The saved state of the chapters' widgets would make every page load
    # require.js and the widget manager from CDNs; their cells show no output on
    # the page (the browser sampler stands in), so the state is dropped.
    executed.metadata.pop("widgets", None)
    if out_dir is not None:
        nbformat.write(executed, str(target))
    else:
        paired = md.with_suffix(".ipynb")
        previous = jupytext.read(paired) if paired.exists() else None
        jupytext.write(clean_copy(source, executed, previous), paired, fmt="ipynb")
        target.unlink()
    return seconds


def assemble_site(notebooks: Path | None, site: Path) -> Path:
    """A copy of the book's sources in ``site`` whose chapter notebooks are the
    executed copies in ``notebooks`` (None: the tracked ``book/*.ipynb``)."""
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(ROOT / name, site / name)
    shutil.copytree(BOOK, site / "book", ignore=shutil.ignore_patterns("runs", "data"))
    serve_mathjax(site)
    (site / "srvp").symlink_to(ROOT / "srvp", target_is_directory=True)  # includes
    if notebooks is not None:
        for md in notebook_chapters():
            executed = notebooks / (md.stem + ".ipynb")
            if not executed.exists():
                raise SystemExit(f"{executed} is missing: execute {md.stem} first")
            shutil.copy2(executed, site / "book" / executed.name)
    return site


def serve_mathjax(site: Path) -> None:
    """Copy MathJax into the site's ``_static/mathjax`` and point the pages at it
    (see ``scripts/offline_assets.py``); where it cannot be fetched, the pages
    keep loading it from the CDN, and the script says so."""
    try:
        folder = offline_assets.mathjax_folder(ROOT / "_build" / "vendor")
    except OSError as err:
        print(f"MathJax: from the CDN (could not fetch {offline_assets.MATHJAX_URL}: "
              f"{err}); the equations then need the network", flush=True)
        return
    shutil.copytree(folder, site / "book" / "_static" / "mathjax")
    config = yaml.safe_load((site / "_config.yml").read_text(encoding="utf-8"))
    config["sphinx"]["config"]["mathjax_path"] = \
        "mathjax/" + offline_assets.MATHJAX_ENTRY  # relative to _static/
    (site / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False),
                                      encoding="utf-8")
    print(f"MathJax {offline_assets.MATHJAX_VERSION}: served from the book",
          flush=True)


def render(notebooks: Path | None, html: Path) -> int:
    """Build the HTML book from ``notebooks`` (see :func:`assemble_site`) into
    ``html``, with warnings as errors; return the exit status."""
    site = assemble_site(notebooks, ROOT / "_build" / "site")
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book",
           "build", str(site), "-W", "-n", "--keep-going"]
    print("$ jupyter-book " + " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    status = subprocess.call(cmd, cwd=ROOT)
    if status == 0:
        if html.exists():
            shutil.rmtree(html)
        shutil.move(str(site / "_build" / "html"), html)
    print(f"render: exit {status} in {time.perf_counter() - start:.1f} s"
          + (f"; open {html / 'index.html'}" if status == 0 else ""), flush=True)
    return status


def tracked_digest() -> str:
    """A digest of the tracked book files, to check that a build left them alone."""
    h = hashlib.sha256()
    for path in sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


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


def make_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(
        description="Execute the book's notebook chapters with papermill, then "
                    "render the book with jupyter-book (warnings as errors).")
    parser.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                        help="value of `profile` in each chapter "
                             "(default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where the executed notebooks go (default: "
                             "_build/executed/PROFILE)")
    parser.add_argument("--html", type=Path, metavar="DIR",
                        default=ROOT / "_build" / "html",
                        help="where the HTML book goes (default: _build/html)")
    parser.add_argument("--update-notebooks", action="store_true",
                        help="store the outputs in the tracked book/NN_name.ipynb "
                             "instead (maintainers) and render from them")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these chapters, e.g. 02_architecture")
    parser.add_argument("--no-render", action="store_true",
                        help="do not build the HTML book after executing")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.update_notebooks and args.out is not None:
        parser.error("--update-notebooks writes into book/: drop --out")
    out = None if args.update_notebooks else \
        (args.out or ROOT / "_build" / "executed" / args.profile)

    chapters = select(notebook_chapters(), args.only)
    os.environ.update(chapter_env())  # the kernels inherit it
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    before = tracked_digest()
    failed = []
    total = time.perf_counter()
    for i, md in enumerate(chapters, 1):
        print(f"[{i}/{len(chapters)}] {md.stem} (profile {args.profile}) ...",
              flush=True)
        try:
            seconds = run_chapter(md, args.profile, out)
        except Exception as err:  # noqa: BLE001 - report every failure, then fail
            failed.append(md.stem)
            print(f"[{i}/{len(chapters)}] {md.stem} FAILED: "
                  f"{type(err).__name__}: {err}", file=sys.stderr, flush=True)
            continue
        print(f"[{i}/{len(chapters)}] {md.stem} ok in {seconds:.1f} s", flush=True)
    print(f"executed {len(chapters) - len(failed)}/{len(chapters)} chapters in "
          f"{time.perf_counter() - total:.1f} s", flush=True)
    if out is not None and tracked_digest() != before:
        print("error: executing the chapters changed tracked files under book/",
              file=sys.stderr)
        return 1
    if failed:
        print("failed chapters: " + ", ".join(failed), file=sys.stderr)
        return 1
    if args.no_render or args.only:
        return 0
    return 1 if render(out, args.html) else 0


if __name__ == "__main__":
    sys.exit(main())
