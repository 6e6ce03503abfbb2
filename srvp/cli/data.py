"""``srvp data ...`` commands: Moving MNIST test sets, MNIST, KTH, Human3.6M, BAIR,
and the models released with the paper.

:func:`register` adds the ``data`` command to an ``argparse`` sub-parser set,
with one sub-command per step that the datasets of :mod:`srvp.data.registry`
declare (see :mod:`srvp.data.steps`), plus ``official-weights``; each leaf
command stores its handler in ``args.func`` (call ``args.func(args)``), and
every handler is :func:`run_step`.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Optional

from .. import download
from .. import official_weights as weights
from ..data import bair, registry, steps
from ..data.mnist_idx import command_line_hint as mnist_hint
from ..data.steps import Step
from ..fileio import folder_problem
from .common import STOPPED, resource_error

__all__ = ["main", "mnist_hint", "register", "run_step"]

_DATA_HELP = ("Prepare datasets: Moving MNIST test sets and MNIST digits; KTH, "
              "Human3.6M and BAIR downloads, conversions and test sets; the "
              "released model weights.")
_DATA_EXITS = ("Exit codes: 0 done; 1 failed (a download, missing files); 2 a wrong "
               "option (nothing written), or too little memory; 4 a full disk (no "
               "space, or the quota reached).")

_WEIGHTS_DESC = f"""\
Download the model released with the paper for DATASET into OUT, as the
experiment folder (config.json, model.pt) that `python -m srvp evaluate` and
srvp.load_official read. Sources, tried in turn: the URLs given with --url, the
authors' server ({weights.AUTHORS_URL}<model>/) and its public copy on the
Hugging Face Hub (nkiyohara/srvp-pretrained-model-mirror). A source is a folder
URL ending with / (file:// too: a copy fetched by hand) or a .zip/.tar[.gz]
archive holding such a folder; archive members outside it are refused. Models:
""" + "\n".join(f"  {name:8s} {r.path + '/':22s} {r.description}"
                for name, r in weights.RELEASES.items()) + """
A model already in OUT that loads is kept without any request (--force fetches
it again); files reach OUT only once the model loads with load_official, and
a failed download leaves nothing in OUT (nor OUT, if it made it)."""


def _run_weights(args: argparse.Namespace):
    from ..run_folder import load_official

    got = weights.download_official(args.dataset, args.out, urls=args.url,
                                    force=args.force, progress=args.progress,
                                    timeout=args.timeout, deadline=args.deadline)
    return got, load_official(got.folder)


def _report_weights(result, args: argparse.Namespace, seconds: float):
    got, (model, cfg) = result
    n = sum(p.numel() for p in model.parameters())
    how = f"from {got.url}" if got.url else "already there (--force fetches it again)"
    return [f"{got.folder}: the released {weights.RELEASES[args.dataset].description} "
            f"model ({cfg.archi}, ny={cfg.ny}, nz={cfg.nz}, {n:,} parameters), {how}",
            f"evaluate it: python -m srvp evaluate {got.folder} --data-dir DATA"]


def _weights_hint(err: BaseException) -> str:
    if isinstance(err, weights.OtherModelError):
        return " (--force replaces it)"
    if isinstance(err, weights.DownloadError):
        return ", or give a copy with --url file:///DIR/"
    return ""


#: Not a dataset's step, but built and run the same way.
OFFICIAL_WEIGHTS = Step(
    "official-weights", "download a model released with the paper", _WEIGHTS_DESC,
    (steps.option("--dataset", required=True, choices=list(weights.RELEASES),
                  help="the model's dataset"),
     steps.out_dir("experiment folder to write (created if needed)", required=True),
     steps.option("--url", action="append", default=[], metavar="URL",
                  help="another source, tried before the built-in ones "
                       "(repeatable)"),
     steps.option("--force", action="store_true",
                  help="download again even if OUT already holds the model"),
     steps.NO_PROGRESS),
    run=_run_weights, report=_report_weights,
    errors=(weights.OtherModelError, OSError), hint=_weights_hint)


#: The limits of every command that downloads (``*-download``, official-weights).
DOWNLOAD_OPTIONS = (
    steps.option("--timeout", type=float, default=None, metavar="S", positive=True,
                 help="give up when no byte arrives for S seconds (default "
                      f"{download.TIMEOUT:g})"),
    steps.option("--deadline", type=float, default=None, metavar="S", positive=True,
                 help="give up on a file not complete after S seconds (default "
                      f"{download.DEADLINE:g}; {bair.DEADLINE:g} for the BAIR "
                      "archive)"),
)


def _options(step: Step) -> tuple:
    """The options of ``step``, plus :data:`DOWNLOAD_OPTIONS` if it downloads
    (its name ends with ``-download``, or it is official-weights)."""
    downloads = step.name.endswith("-download") or step is OFFICIAL_WEIGHTS
    return (*step.options, *(DOWNLOAD_OPTIONS if downloads else ()))


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` command (and its sub-commands) to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The object returned by ``ArgumentParser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``data`` parser.
    """
    data = subparsers.add_parser("data", help=_DATA_HELP,
                                 description=f"{_DATA_HELP} {_DATA_EXITS}")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND",
                                   title="commands", required=True)
    for step in (*registry.data_steps(), OFFICIAL_WEIGHTS):
        add_step(commands, step)
    return data


def add_step(commands, step: Step) -> argparse.ArgumentParser:
    """The sub-command of ``step``: its options, and :func:`run_step` as handler."""
    parser = commands.add_parser(step.name, help=step.help,
                                 description=step.description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for option in _options(step):
        parser.add_argument(*option.flags, **option.settings)
    parser.set_defaults(func=functools.partial(run_step, step))
    return parser


def run_step(step: Step, args: argparse.Namespace) -> int:
    """The one handler of ``srvp data`` sub-commands.

    Bad options are refused first (one ``error:`` line, exit status 2, nothing
    written); then ``step.run`` works, with progress bars unless
    ``--no-progress``; an error of ``step.errors`` is one ``error:`` line and
    exit status 1, a full disk exit status 4 and too little memory 2 (the
    codes of :mod:`srvp.cli.common`); else the ``step.report`` lines are
    printed (exit status 0).
    """
    error = _input_error(step, args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.progress = not getattr(args, "no_progress", False)
    start = time.perf_counter()
    try:
        result = step.run(args)
        lines = list(step.report(result, args, time.perf_counter() - start))
    except Exception as err:
        found = resource_error(err, "ask for less (fewer or shorter videos)")
        if found is None and not isinstance(err, step.errors):
            raise
        code, message = found or (STOPPED, f"{err}{step.hint(err)}")
        print(f"error: {message}", file=sys.stderr)
        return code
    for line in lines:
        print(line)
    return 0


def _input_error(step: Step, args: argparse.Namespace) -> Optional[str]:
    """The first bad option of a data command, as a message (None: all good).

    Checked before any work: counts, the data folder (a missing one is left
    to each command, whose message says what it should hold) and the output
    (a folder, or the folder of a file, that can be created and written).
    """
    for option in _options(step):
        value = getattr(args, option.dest, None)
        if option.positive and value is not None and value < 1:
            return f"{option.flags[0]} {value}: must be at least 1"
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        return f"--data-dir {data_dir} is a file: give the dataset's folder"
    out = getattr(args, "out", None)
    problem = None if out is None else folder_problem(out)
    return None if problem is None else f"--out {problem}"


def main(argv=None) -> int:
    """Stand-alone entry point: ``python -m srvp.cli.data data ...``."""
    parser = argparse.ArgumentParser(prog="srvp")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
