"""Small helpers the book's chapters share: where the book, MNIST and the model
trained for the book are (set by ``$SRVP_BOOK_DIR`` and ``$SRVP_MNIST_DIR``), and
the plumbing of their cells (timing, tables, files)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

#: Where a chapter run on its own (Colab) fetches the book's files.
RAW_URL = "https://raw.githubusercontent.com/srvp-book/srvp/main/book/"
#: Folder of the SRVP model trained for the book, relative to ``book/``; the
#: runs of other models sit beside it (``shipped_run(book, run="svg_cpu")``).
RUN = ("runs", "cpu")
#: The environment variable that names the ``book/`` folder (the chapters' files:
#: ``runs/``). ``scripts/build_book.py`` sets it; unset, a chapter uses its
#: working directory, which is the chapter's own folder when papermill, Jupyter or
#: Colab runs it.
BOOK_ENV = "SRVP_BOOK_DIR"
#: Where :func:`find_mnist` downloads MNIST when ``$SRVP_MNIST_DIR`` is unset,
#: relative to the working directory.
MNIST_DOWNLOAD = Path("data") / "mnist"


def find_book() -> Path:
    """The ``book/`` folder: ``$SRVP_BOOK_DIR``, else the working directory."""
    folder = os.environ.get(BOOK_ENV)
    return Path(folder).resolve() if folder else Path.cwd()


def find_mnist(download: bool = True) -> Path:
    """The folder of the MNIST IDX files: ``$SRVP_MNIST_DIR``, else ``data/mnist``
    in the working directory, where they are downloaded when ``download`` (needs
    the internet)."""
    from .data.mnist_idx import ENV_VAR, load_mnist

    folder = os.environ.get(ENV_VAR)
    if folder:
        return Path(folder).resolve()
    if download:
        for split in ("train", "test"):
            load_mnist(MNIST_DOWNLOAD, split=split, download=True)
    return MNIST_DOWNLOAD.resolve()


def shipped_run(book: Path, names: Sequence[str] = ("config.json", "model.pt"),
                optional: Sequence[str] = (), run: str = RUN[-1]) -> Path:
    """The folder ``runs/<run>`` of a model trained for the book.

    Files missing there (a chapter on Colab) are fetched from the repository
    (:data:`RAW_URL`) by :func:`srvp.download.fetch`, which checks each one
    before it enters the folder: no HTML page, a ``.json`` parses (each line of
    a ``.jsonl``), a ``.npz`` is a whole zip, a ``.pt`` loads as a state dict
    with the package's safe loader. Files in ``optional`` may be absent (or
    unreachable) upstream. ``run`` names the folder: ``"cpu"`` (SRVP, the
    default) or ``"svg_cpu"`` (the SVG-LP baseline, book ch. 9). Prints the
    run's name and :func:`weights_digest`. A required file that can be neither
    found nor fetched raises :class:`srvp.download.DownloadError` (an
    ``OSError``, one line: the URL, why, and where to put the file by hand); a
    folder created for it is then removed again.
    """
    from .download import DownloadError, fetch, own_folder
    from .run_folder import read_state_dict

    parts = (*RUN[:-1], run)
    folder = Path(book).joinpath(*parts)
    with own_folder(folder):
        for name in (*names, *optional):
            if (folder / name).exists():
                continue
            check = read_state_dict if name.endswith(".pt") else None
            try:
                fetch(RAW_URL + "/".join(parts) + "/" + name, folder / name,
                      check=check)
            except DownloadError:
                if name not in optional:
                    raise
    # the outputs name the files they show: the weights, else the first file
    shown = "model.pt" if (folder / "model.pt").exists() else \
        (names[0] if names else None)
    if shown is not None and (folder / shown).exists():
        print(f"{run}: {shown} sha256 {weights_digest(folder, shown)}")
    return folder


def weights_digest(folder: Path, name: str = "model.pt") -> str:
    """The first 12 hex digits of the SHA-256 of ``folder/name``: chapters print
    it, so that stored outputs name the weights (or table) that produced them."""
    return hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()[:12]


def released_kth(folder, n_videos: int = 4, actions: Sequence[str] = ("handwaving",),
                 seq_len: int = 40, progress: bool = True):
    """The released KTH model and a few KTH videos of its test persons, for the
    gpu profile of book ch. 6 (needs internet and PyAV, ``srvp[video]``).

    With the package's own downloads, under ``folder``: the model into
    ``folder/kth_model`` (:func:`srvp.official_weights.download_official`), the
    raw videos of ``actions`` into ``folder/kth`` (:func:`srvp.data.kth.download_kth`,
    about 200 MB per action), converted once to 64 x 64 frames. Each step keeps
    what an earlier call left, so a second call downloads nothing.

    Returns
    -------
    (model, cfg, videos): videos (seq_len, n_videos, 1, 64, 64) float in [0, 1].
    """
    import torch

    from .data import kth
    from .official_weights import download_official
    from .run_folder import load_official

    folder = Path(folder)
    download_official("kth", folder / "kth_model", progress=progress)
    model, cfg = load_official(folder / "kth_model")
    data = folder / "kth"
    kth.download_kth(data, classes=tuple(actions), urls=kth.URLS, progress=progress)
    if not (data / f"processed_{cfg.nx}").is_dir():
        kth.convert_kth(data, image_size=cfg.nx, progress=progress,
                        classes=tuple(actions))
    clips = kth.test_person_clips(data, n_videos, seq_len, image_size=cfg.nx)
    videos = torch.from_numpy(clips).float().div(255)  # (N, T, H, W)
    return model, cfg, videos.transpose(0, 1)[:, :, None]


def bouncing_squares(cfg, batch: int, seed: int = 0, size: int = 16, device="cpu"):
    """Moving MNIST with two white squares of ``size`` pixels in place of the
    digits, the toy videos of book ch. 2 and 3: (T, B, C, 64, 64) float in [0, 1],
    T = ``cfg.seq_len``."""
    import numpy as np
    import torch

    from .data import render, sample_trajectories

    rng = np.random.default_rng(seed)
    sprites = np.zeros((batch, 2, 28, 28), dtype=np.uint8)
    lo = (28 - size) // 2  # the square in the middle of a 28 x 28 sprite
    sprites[:, :, lo:lo + size, lo:lo + size] = 255
    paths = sample_trajectories(rng, 2 * batch, cfg.seq_len)  # (2 B, T, 4)
    paths = paths.reshape(batch, 2, cfg.seq_len, 4).transpose(0, 2, 1, 3)
    frames = torch.from_numpy(render(sprites, paths)).float() / 255  # (B, T, H, W)
    x = frames.transpose(0, 1)[:, :, None].expand(-1, -1, cfg.nc, -1, -1)
    return x.contiguous().to(device)


def pm(mean: float, ci: float, digits: int = 2, signed: bool = False) -> str:
    """``"mean ± ci"`` with ``digits`` decimals (``signed``: the mean's sign always)."""
    return f"{mean:{'+' if signed else ''}.{digits}f} ± {ci:.{digits}f}"


def read_results(folder, name: str = "results.json"):
    """The recorded evaluation ``folder/name`` (written by ``python -m srvp
    evaluate``) as a dict, or None when there is none."""
    import json

    path = None if folder is None else Path(folder) / name
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def pm_summary(summary, digits: int = 2, signed: bool = False) -> str:
    """:func:`pm` of a summary ``{"mean": ..., "ci95": ...}`` (as written by
    :func:`srvp.evaluate.summarize`)."""
    return pm(summary["mean"], summary["ci95"], digits, signed)


def verdict(summary, higher: str = "higher", lower: str = "lower",
            unresolved: str = "not resolved") -> str:
    """Which side of zero the 95 % interval ``mean ± ci95`` of a (paired)
    difference lies on: ``higher`` above, ``lower`` below, ``unresolved`` when the
    interval holds or touches zero."""
    low = summary["mean"] - summary["ci95"]
    high = summary["mean"] + summary["ci95"]
    return higher if low > 0 else lower if high < 0 else unresolved


def md_table(header: Sequence, rows, align: str | None = None):
    """A GitHub-flavoured Markdown table, shown as a table by Jupyter and on the
    book's pages: ``IPython.display.Markdown``. Cells go through ``str`` (a ``|``
    in a cell is escaped); ``align`` has one letter per column, ``l`` (the
    default), ``r`` or ``c``."""
    from IPython.display import Markdown

    align = "l" * len(header) if align is None else align
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align={align!r}: one of l, r, c per column "
                         f"({len(header)} columns)")
    rule = {"l": "---", "r": "---:", "c": ":---:"}

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"

    lines = [line(header), line(rule[a] for a in align)]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of "
                             f"{len(header)} columns: {row}")
        lines.append(line(row))
    return Markdown("\n".join(lines))


def cell_float(table, key: str, column: str) -> float:
    """``table[key][column]`` as a number, NaN where the cell is empty: a table
    of text cells keyed by its first column (``runs/history.csv``, book ch. 4)."""
    return float(table[key][column] or "nan")


def report_summary(report, metric: str, reference: str | None = None) -> dict:
    """The summary of ``metric`` in an evaluation report (:func:`read_results`,
    or the results of :func:`srvp.evaluate.evaluate`): the model's best of N, or
    the reference predictor ``reference`` (``"blank"``, ``"last_frame"``).

    Where some videos have an infinite PSNR (a frame predicted exactly), the
    mean and interval are over the others, and ``n_infinite`` says how many were
    left out (0 otherwise); ``n`` is the number of videos."""
    scores = (report["reference"][reference] if reference else report["metrics"])
    m = scores[metric]
    if m.get("n_infinite"):
        return {"mean": m["finite_mean"], "ci95": m["finite_ci95"], "n": m["n"],
                "n_infinite": m["n_infinite"]}
    return {"mean": m["mean"], "ci95": m["ci95"], "n": m["n"], "n_infinite": 0}


def describe_run(run_folder, cfg) -> str:
    """Two lines on how a model was trained, from its config and its
    ``log.jsonl``: filters, batch size, planned steps, and where the log ends."""
    import json

    lines = (Path(run_folder) / "log.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines if line.strip()]
    last = max((r for r in log if "time" in r), key=lambda r: r["step"])
    hours = last["time"] / 3600
    spent = f"{hours:.1f} h" if hours >= 1 else f"{60 * hours:.0f} min"
    return (f"trained model: nf={cfg.nf}, batch {cfg.batch_size}, "
            f"{cfg.n_iter:,d} steps planned;\nits log ends at step "
            f"{last['step']:,d}, after {spent} of training")


class Interactive:
    """A widget that says what it is where no kernel runs it.

    Jupyter shows a widget from its live kernel; a saved notebook opened without
    one (on GitHub, in Colab before running, in a viewer) falls back to the
    output's plain text, which for a widget is its ``repr``, ``VBox(children=...``.
    Displayed, this object is the widget with ``fallback`` as that plain text."""

    def __init__(self, widget, fallback: str):
        self.widget, self.fallback = widget, fallback

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data or {})
        data["text/plain"] = self.fallback
        return data


#: Statuses of ``published.csv``: "confirmed" (quoted from the paper, or two
#: sources that agree), "disputed" (sources disagree), "single source".
PUBLISHED = "published.csv"


def read_published(book: Path) -> dict:
    """The published numbers of ``book/published.csv`` (book ch. 8 lists the
    sources), keyed by ``(dataset, method, metric)``: each a dict with ``value``,
    ``ci95``, ``sources``, ``status`` and ``note``. A chapter opened on its own
    (Colab) fetches the file from the repository."""
    import csv

    path = Path(book) / PUBLISHED
    if not path.exists():
        from .download import fetch

        fetch(RAW_URL + PUBLISHED, path, max_bytes=1 << 20, progress=False)
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["dataset"], r["method"], r["metric"]): r for r in csv.DictReader(f)}


#: The table of the book's CPU runs, relative to ``book/`` (``runs/README.md``
#: explains its columns).
HISTORY = "runs/history.csv"


def read_history(book: Path) -> dict:
    """The rows of ``runs/history.csv`` by run name, in the file's order (a
    chapter opened on its own fetches the file from the repository)."""
    import csv

    path = Path(book) / HISTORY
    if not path.exists():
        from .download import fetch

        fetch(RAW_URL + HISTORY, path, max_bytes=1 << 20, progress=False)
    with open(path, newline="", encoding="utf-8") as f:
        return {r["run"]: r for r in csv.DictReader(f)}


def history_config(history: dict, run: str):
    """The :class:`srvp.Config` of a run of :func:`read_history`: its root's
    preset, then every ``--set`` of the chain of parents down to ``run``."""
    from .cli.train import parse_overrides
    from .config import preset

    chain = [history[run]]
    while chain[0]["parent"]:
        chain.insert(0, history[chain[0]["parent"]])
    sets = [t for row in chain for t in row["changes"].split() if "=" in t]
    return preset(chain[0]["preset"], **parse_overrides(sets))


def published_cell(rows: dict, dataset: str, method: str, metric: str) -> str:
    """One published number as ``"value ± ci"``, its status said when it is not
    "confirmed", or ``"(not found)"`` when no source gives it."""
    r = rows.get((dataset, method, metric))
    if r is None:
        return "(not found)"
    text = f"{r['value']} ± {r['ci95']}"
    return text if r["status"] == "confirmed" else f"{text} ({r['status']})"
