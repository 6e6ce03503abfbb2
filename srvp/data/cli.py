"""``srvp data ...`` commands: build the Moving MNIST test sets, download MNIST.

:func:`register` adds the ``data`` command to an ``argparse`` sub-parser set; each
leaf command stores its handler in ``args.func`` (call ``args.func(args)``).
"""

from __future__ import annotations

import argparse
import sys
import time

from . import mnist, testset

_DATA_HELP = "Prepare datasets: Moving MNIST test sets and MNIST digits."

_TESTSET_DESC = """\
Build the fixed Moving MNIST test set exactly as the official SRVP script
(preprocessing/mmnist/make_test_set.py) does: the 10,000 MNIST test digits are
shuffled with seed 42 and paired into 5,000 videos, whose trajectories follow the
official generator. The output is OUT/smmnist_test_2digits_64.npz (stochastic) or
OUT/mmnist_test_2digits_64.npz (--deterministic), with the arrays 'sequences'
(T, N, 64, 64) uint8, 'latents' (T, N, 2, 4), 'labels' (N, 2) and 'digits'
(N, 2, 28, 28). Default lengths: 25 frames (stochastic), 100 (deterministic)."""

_DOWNLOAD_DESC = f"""\
Download the standard MNIST IDX files (gzip) into OUT, trying the mirrors
{', '.join(mnist.MIRRORS)} in turn and checking the published MD5 sums. Needs
internet; offline, copy the files by hand and point {mnist.ENV_VAR} to them."""


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
    data = subparsers.add_parser("data", help=_DATA_HELP, description=_DATA_HELP)
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND",
                                   title="commands", required=True)
    _add_testset_parser(commands)
    _add_download_parser(commands)
    return data


def _add_testset_parser(commands) -> None:
    """The ``mmnist-testset`` sub-command."""
    p = commands.add_parser(
        "mmnist-testset", help="build the official Moving MNIST test set (.npz)",
        description=_TESTSET_DESC,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", metavar="DIR", default=None,
                   help="folder holding t10k-images-idx3-ubyte[.gz] and "
                        f"t10k-labels-idx1-ubyte[.gz] (default: ${mnist.ENV_VAR})")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="folder where the .npz file is written (created if needed)")
    p.add_argument("--deterministic", action="store_true",
                   help="build the deterministic Moving MNIST test set instead")
    p.add_argument("--seq-len", metavar="N", type=int, default=None,
                   help="frames per video (default: 25 stochastic, 100 deterministic)")
    p.add_argument("--num-videos", metavar="N", type=int, default=None,
                   help="build only the first N videos, an exact prefix of the full "
                        "set (for quick checks; default: all 5,000)")
    p.add_argument("--download", action="store_true",
                   help="download the MNIST test files into --mnist-dir if missing")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_mmnist_testset)


def _add_download_parser(commands) -> None:
    """The ``mnist-download`` sub-command."""
    p = commands.add_parser(
        "mnist-download", help="download the MNIST IDX files (MD5-checked)",
        description=_DOWNLOAD_DESC,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="DIR", required=True,
                   help="folder where the four .gz files are written")
    p.add_argument("--split", choices=("train", "test", "all"), default="all",
                   help="which split to fetch (default: all)")
    p.set_defaults(func=run_mnist_download)


def _fail(err: Exception) -> int:
    """Report a data error on stderr (no traceback) and return exit status 1."""
    print(f"error: {err}", file=sys.stderr)
    return 1


def run_mmnist_testset(args: argparse.Namespace) -> int:
    """Handler of ``data mmnist-testset``: build, save and summarise."""
    start = time.perf_counter()
    try:
        images, labels = mnist.load_mnist(args.mnist_dir, split="test",
                                          download=args.download)
    except (mnist.MNISTNotFoundError, mnist.IDXFormatError) as err:
        return _fail(err)
    arrays = testset.build_test_set(images, labels, args.seq_len, args.deterministic,
                                    num_videos=args.num_videos,
                                    progress=not args.no_progress)
    path = testset.save_test_set(arrays, args.out, args.deterministic)
    kind = "deterministic" if args.deterministic else "stochastic"
    t_len, n = arrays["sequences"].shape[:2]
    print(f"Wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in "
          f"{time.perf_counter() - start:.1f} s: {kind} Moving MNIST, "
          f"{n} videos of {t_len} frames, seed 42")
    for name in testset.ARRAY_NAMES:
        a = arrays[name]
        print(f"  {name:<9} {a.dtype!s:<5} {tuple(a.shape)}")
    verdict = testset.matches_official(arrays, args.deterministic)
    if verdict is not None:
        print("  identical to the official test set: " + ("yes" if verdict else "NO"))
    return 0


def run_mnist_download(args: argparse.Namespace) -> int:
    """Handler of ``data mnist-download``."""
    splits = ("train", "test") if args.split == "all" else (args.split,)
    try:
        paths = mnist.download_mnist(args.out, splits=splits)
    except mnist.MNISTNotFoundError as err:
        return _fail(err)
    for path in paths:
        print(f"{path}  md5 {mnist.md5sum(path)}  ok")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry point: ``python -m srvp.data.cli data ...``."""
    parser = argparse.ArgumentParser(prog="srvp")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
