"""What a dataset declares for ``python -m srvp data``: its preparation steps
(download, conversion, test set), one sub-command each (book ch. 1).

A dataset module lists its steps in ``STEPS``; its entry in
:data:`srvp.data.registry.DATASETS` points to them; :mod:`srvp.cli.data`
builds one sub-command per step and runs every step through one handler:
options checked, ``run`` called, errors reported as one line, the ``report``
lines printed. A step knows nothing of ``argparse`` beyond the namespace of
its own options (plus ``progress``: False under ``--no-progress``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Tuple

#: Errors that a step reports as one ``error:`` line (exit status 1).
DATA_ERRORS = (OSError, ValueError, ImportError)


@dataclass(frozen=True)
class Option:
    """One command-line option: its flags and ``add_argument`` keywords.

    ``positive``: a count, refused below 1 before the step runs.
    """

    flags: Tuple[str, ...]
    settings: Mapping[str, Any]
    positive: bool = False

    @property
    def dest(self) -> str:
        """The attribute that holds the option's value (``--seq-len``: seq_len)."""
        return self.settings.get("dest") or self.flags[0].lstrip("-").replace("-", "_")


def option(*flags: str, positive: bool = False, **settings) -> Option:
    """An :class:`Option`; ``settings`` go to ``ArgumentParser.add_argument`` and
    must include a ``help`` text."""
    if not settings.get("help"):
        raise ValueError(f"option {flags[0]}: give it a help text")
    return Option(flags, settings, positive)


def no_hint(err: BaseException) -> str:
    """The default :attr:`Step.hint`: nothing added to the error message."""
    return ""


@dataclass(frozen=True)
class Step:
    """One ``python -m srvp data`` sub-command.

    Attributes
    ----------
    name : str
        The sub-command, e.g. ``"kth-convert"``.
    help : str
        Its line in ``python -m srvp data --help``.
    description : str
        Its ``--help`` text, printed as written (line breaks kept).
    options : tuple of Option
        Its options.
    run : callable
        ``run(args) -> result``: does the work; ``args`` holds the options and
        ``progress``.
    report : callable
        ``report(result, args, seconds) -> lines``: the summary printed, where
        ``seconds`` is the time ``run`` took.
    errors : tuple of type
        Exceptions reported as one ``error:`` line with exit status 1.
    hint : callable
        ``hint(err) -> str``, appended to the error line (e.g. the option to use).
    """

    name: str
    help: str
    description: str
    options: Tuple[Option, ...]
    run: Callable[[Any], Any]
    report: Callable[[Any, Any, float], Iterable[str]]
    errors: Tuple[type, ...] = DATA_ERRORS
    hint: Callable[[BaseException], str] = field(default=no_hint)


# ---------------------------------------------- options several datasets share
def data_dir(help: str = "dataset folder (see above)") -> Option:
    """``--data-dir DATA`` (required): the folder a step reads."""
    return option("--data-dir", metavar="DATA", required=True, help=help)


def out_dir(help: str = "output folder (default: DATA)", required: bool = False
            ) -> Option:
    """``--out DIR``: the folder a step writes."""
    return option("--out", metavar="DIR", required=required,
                  default=None, help=help)


def seed(default: int = 42) -> Option:
    """``--seed N``: the seed of a test set's draws."""
    return option("--seed", type=int, default=default, metavar="N",
                  help=f"seed of the draws (default {default}, the official one)")


def clips(default: int = 1000) -> Option:
    """``--size N`` (at least 1): how many clips a test set draws."""
    return option("--size", type=int, default=default, metavar="N", positive=True,
                  help=f"clips in the test set (default {default})")


def seq_len(default: int, what: str = "frames per clip") -> Option:
    """``--seq-len N`` (at least 1): the clip length of a test set."""
    return option("--seq-len", type=int, default=default, metavar="N", positive=True,
                  help=f"{what} (default {default})")


def image_size(help: str) -> Option:
    """``--image-size N`` (at least 1, default 64)."""
    return option("--image-size", type=int, default=64, metavar="N",
                  positive=True, help=help)


OVERWRITE = option("--overwrite", action="store_true",
                   help="replace existing outputs (else refuse)")
NO_PROGRESS = option("--no-progress", action="store_true", help="hide progress bars")
#: What a conversion takes: the dataset folder, the output folder, --overwrite.
CONVERT = (data_dir(), out_dir(), OVERWRITE)
