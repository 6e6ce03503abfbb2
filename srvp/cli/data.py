"""``srvp data ...`` commands: Moving MNIST test sets, MNIST, KTH, Human3.6M, BAIR,
and the models released with the paper.

:func:`register` adds the ``data`` command to an ``argparse`` sub-parser set; each
leaf command stores its handler in ``args.func`` (call ``args.func(args)``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from .. import official_weights as weights
from ..data import mnist_idx as mnist
from ..data import moving_mnist_testset as testset
from ..fileio import folder_problem

_DATA_HELP = ("Prepare datasets: Moving MNIST test sets and MNIST digits; KTH, "
              "Human3.6M and BAIR downloads, conversions and test sets; the "
              "released model weights.")

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
it again); files reach OUT only once the model loads with load_official."""


def mnist_hint(err: BaseException, option: str = "--data-dir") -> str:
    """What a command adds to a missing-MNIST error: its own option's name
    (the library's messages name none)."""
    if isinstance(err, mnist.MNISTNotFoundError):
        return f" On the command line: {option} DIR."
    return ""


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
    _add_weights_parser(commands)
    _add_kth_parsers(commands)
    _add_human_parsers(commands)
    _add_bair_parsers(commands)
    for parser in commands.choices.values():  # every command checks its input first
        parser.set_defaults(func=_checked(parser.get_default("func")))
    return data


#: Counts that must be at least 1 when given.
_POSITIVE = ("num_videos", "seq_len", "size", "image_size")


def _input_error(args: argparse.Namespace):
    """The first bad option of a data command, as a message (None: all good).

    Checked before any work: counts, the data folder (a missing one is left
    to each command, whose message says what it should hold) and the output
    (a folder, or the folder of a file, that can be created and written).
    """
    for name in _POSITIVE:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} {value}: must be at least 1"
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        return f"--data-dir {data_dir} is a file: give the dataset's folder"
    out = getattr(args, "out", None)
    problem = None if out is None else folder_problem(out)
    return None if problem is None else f"--out {problem}"


def _checked(func):
    """``func`` run only when :func:`_input_error` finds nothing (exit 2)."""
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        error = _input_error(args)
        if error is not None:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return func(args)
    return run


def _add_testset_parser(commands) -> None:
    """The ``mmnist-testset`` sub-command."""
    p = commands.add_parser(
        "mmnist-testset", help="build the official Moving MNIST test set (.npz)",
        description=_TESTSET_DESC,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", metavar="DIR", default=None,
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
                   help="download the MNIST test files into --data-dir if missing")
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


def _add_weights_parser(commands) -> None:
    """The ``official-weights`` sub-command."""
    p = commands.add_parser(
        "official-weights", help="download a model released with the paper",
        description=_WEIGHTS_DESC, formatter_class=_RAW)
    p.add_argument("--dataset", required=True, choices=list(weights.RELEASES),
                   help="the model's dataset")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="experiment folder to write (created if needed)")
    p.add_argument("--url", action="append", default=[], metavar="URL",
                   help="another source, tried before the built-in ones "
                        "(repeatable)")
    p.add_argument("--force", action="store_true",
                   help="download again even if OUT already holds the model")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_official_weights)


def _fail(err: object) -> int:
    """Report a data error on stderr (no traceback) and return exit status 1."""
    print(f"error: {err}", file=sys.stderr)
    return 1


def run_mmnist_testset(args: argparse.Namespace) -> int:
    """Handler of ``data mmnist-testset``: build, save and summarise."""
    start = time.perf_counter()
    try:
        images, labels = mnist.load_mnist(args.data_dir,
                                          split="test", download=args.download)
    except (mnist.MNISTNotFoundError, mnist.IDXFormatError) as err:
        return _fail(f"{err}{mnist_hint(err)}")
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


def run_official_weights(args: argparse.Namespace) -> int:
    """Handler of ``data official-weights``."""
    from ..run_folder import load_official

    try:
        got = weights.download_official(args.dataset, args.out, urls=args.url,
                                        force=args.force,
                                        progress=not args.no_progress)
    except weights.OtherModelError as err:
        return _fail(f"{err} (--force replaces it)")
    except weights.DownloadError as err:
        return _fail(f"{err}, or give a copy with --url file:///DIR/")
    except OSError as err:  # OUT cannot be written
        return _fail(err)
    model, cfg = load_official(got.folder)
    n = sum(p.numel() for p in model.parameters())
    how = f"from {got.url}" if got.url else "already there (--force fetches it again)"
    print(f"{got.folder}: the released {weights.RELEASES[args.dataset].description} "
          f"model ({cfg.archi}, ny={cfg.ny}, nz={cfg.nz}, {n:,} parameters), {how}")
    print(f"evaluate it: python -m srvp evaluate {got.folder} --data-dir DATA")
    return 0


# ------------------------------------------------------ KTH, Human3.6M, BAIR
_DATA_ERRORS = (OSError, ValueError, ImportError)
_RAW = argparse.RawDescriptionHelpFormatter

_KTH_DOWNLOAD_DESC = """\
Download the six KTH action zips (boxing, handclapping, handwaving, jogging,
running, walking; about 1 GB) from the KTH site, check and extract them into
OUT/raw/<action>/personXX_<action>_dY_uncomp.avi, then delete the zips. Actions
already extracted are skipped. Needs internet: offline it fails at once."""

_KTH_CONVERT_DESC = """\
Convert the raw KTH videos (DATA/raw/<action>/*.avi) into 64x64 grayscale uint8
arrays, as the official preprocessing (the whole frame resized by FFmpeg's
bicubic scaler, first RGB channel kept): OUT/processed_64/<action>/
personXX_<action>_dY.npy, shape (T, 64, 64). Needs PyAV (pip install av). The
folder appears only when every video is converted."""

_KTH_TESTSET_DESC = """\
Build the fixed KTH test set exactly as the official make_test_set.py: 1,000
clips of 40 frames from persons 21-25, drawn with NumPy's legacy generator
seeded with 42 (per clip: action, person, scenario d1-d4, start frame). Reads
DATA/processed_64 and writes DATA/svg_test_set_40.npz with 'sequences'
(N, T, 64, 64) uint8, 'persons' (N,) and 'actions' (N,)."""

_HUMAN_CONVERT_DESC = """\
Convert the Human3.6M videos DATA/S<k>/Videos/*.mp4 (files starting with '_' are
skipped): each frame is cropped to the box (100, 100, 900, 900), then resized to
64x64 RGB with Lanczos; all frames are kept (subsampling happens when clips are
read). Writes OUT/train/S<k>-<name>.npy for S1, S5, S6, S7, S8 and
OUT/test/S<k>-<name>.npy for S9, S11, uint8 (T, 64, 64, 3). Needs PyAV and
Pillow. Each folder appears only when complete."""

_HUMAN_TESTSET_DESC = """\
Build the fixed Human3.6M test set as the official make_test_set.py: 1,000 clips
of 53 subsampled frames (one in 8) from the videos of DATA/test (sorted names),
drawn with NumPy's legacy generator seeded with 42 (per clip: video, start).
Each clip keeps its intermediate frames, (53 - 1) * 8 + 1 = 417 frames, in
DATA/test_set_53_8/test_<i>.npz ('image', 'filename', 'subject', 'frame').
The full set takes about 5.2 GB."""

_BAIR_DOWNLOAD_DESC = """\
Download bair_robot_pushing_dataset_v0.tar (about 30 GB) from the dataset's
site into OUT and extract OUT/softmotion30_44k/{train,test}/*.tfrecords (an
archive already there is reused). Needs internet: offline it fails at once."""

_BAIR_CONVERT_DESC = """\
Convert the BAIR TFRecords (DATA/softmotion30_44k/{train,test}) without
TensorFlow: frames '<i>/image_aux1/encoded', i = 0..29, 64x64 RGB, record and
CRC checks on. Writes OUT/processed/<split>/<file>.npy, uint8
(n_videos, 30, 64, 64, 3), in the official video order. Each split folder
appears only when complete."""


def _common(p, data: bool = True, out_default: str = "DATA") -> None:
    """Shared options: --data-dir, --out, --overwrite, --no-progress."""
    if data:
        p.add_argument("--data-dir", metavar="DATA", required=True,
                       help="dataset folder (see above)")
        p.add_argument("--out", metavar="DIR", default=None,
                       help=f"output folder (default: {out_default})")
        p.add_argument("--overwrite", action="store_true",
                       help="replace existing outputs (else refuse)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_kth_parsers(commands) -> None:
    """The ``kth-download``, ``kth-convert`` and ``kth-testset`` sub-commands."""
    p = commands.add_parser("kth-download", help="download the raw KTH videos",
                            description=_KTH_DOWNLOAD_DESC, formatter_class=_RAW)
    p.add_argument("--out", metavar="DIR", required=True, help="dataset folder")
    _common(p, data=False)
    p.set_defaults(func=run_kth_download)
    p = commands.add_parser("kth-convert", help="convert KTH .avi files to arrays",
                            description=_KTH_CONVERT_DESC, formatter_class=_RAW)
    _common(p)
    p.add_argument("--image-size", type=int, default=64, metavar="N")
    p.set_defaults(func=run_kth_convert)
    p = commands.add_parser("kth-testset", help="build the official KTH test set",
                            description=_KTH_TESTSET_DESC, formatter_class=_RAW)
    p.add_argument("--data-dir", metavar="DATA", required=True,
                   help="dataset folder holding processed_64/")
    p.add_argument("--size", type=int, default=1000, help="clips (default 1000)")
    p.add_argument("--seq-len", type=int, default=40, help="frames (default 40)")
    p.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    p.add_argument("--image-size", type=int, default=64, metavar="N")
    _common(p, data=False)
    p.set_defaults(func=run_kth_testset)


def _add_human_parsers(commands) -> None:
    """The ``human-convert`` and ``human-testset`` sub-commands."""
    p = commands.add_parser("human-convert", help="convert Human3.6M videos",
                            description=_HUMAN_CONVERT_DESC, formatter_class=_RAW)
    _common(p)
    p.add_argument("--image-size", type=int, default=64, metavar="N")
    p.add_argument("--folds", nargs="+", choices=("train", "test"),
                   default=["train", "test"], help="folds to convert (default both)")
    p.set_defaults(func=run_human_convert)
    p = commands.add_parser("human-testset", help="build the Human3.6M test set",
                            description=_HUMAN_TESTSET_DESC, formatter_class=_RAW)
    p.add_argument("--data-dir", metavar="DATA", required=True,
                   help="dataset folder holding test/")
    p.add_argument("--size", type=int, default=1000, help="clips (default 1000)")
    p.add_argument("--seq-len", type=int, default=53,
                   help="subsampled frames (default 53)")
    p.add_argument("--subsampling", type=int, default=8, help="default 8")
    p.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing test-set folder")
    _common(p, data=False)
    p.set_defaults(func=run_human_testset)


def _add_bair_parsers(commands) -> None:
    """The ``bair-download`` and ``bair-convert`` sub-commands."""
    p = commands.add_parser("bair-download", help="download the BAIR TFRecords",
                            description=_BAIR_DOWNLOAD_DESC, formatter_class=_RAW)
    p.add_argument("--out", metavar="DIR", required=True, help="dataset folder")
    p.add_argument("--keep-archive", action="store_true",
                   help="keep the .tar after extraction")
    _common(p, data=False)
    p.set_defaults(func=run_bair_download)
    p = commands.add_parser("bair-convert", help="convert BAIR TFRecords to arrays",
                            description=_BAIR_CONVERT_DESC, formatter_class=_RAW)
    _common(p)
    p.add_argument("--splits", nargs="+", choices=("train", "test"),
                   default=["train", "test"], help="splits (default both)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the record data CRCs (faster)")
    p.set_defaults(func=run_bair_convert)


def _elapsed(start: float) -> str:
    return f"{time.perf_counter() - start:.1f} s"


def run_kth_download(args: argparse.Namespace) -> int:
    """Handler of ``data kth-download``."""
    from ..data import kth

    try:
        folders = kth.download_kth(args.out, progress=not args.no_progress)
    except _DATA_ERRORS as err:
        return _fail(err)
    for folder in folders:
        print(f"{folder}: {len(list(folder.glob('*.avi')))} videos")
    return 0


def run_kth_convert(args: argparse.Namespace) -> int:
    """Handler of ``data kth-convert``."""
    from ..data import kth

    start = time.perf_counter()
    try:
        info = kth.convert_kth(args.data_dir, args.out, args.image_size,
                               args.overwrite, progress=not args.no_progress)
    except _DATA_ERRORS as err:
        return _fail(err)
    print(f"Wrote {info['path']} in {_elapsed(start)}: {info['videos']} videos, "
          f"{info['frames']} frames of {args.image_size}x{args.image_size} uint8")
    for action, count in info["per_action"].items():
        print(f"  {action:<13} {count} videos")
    return 0


def run_kth_testset(args: argparse.Namespace) -> int:
    """Handler of ``data kth-testset``."""
    from ..data import kth

    start = time.perf_counter()
    try:
        path = kth.make_test_set(args.data_dir, size=args.size, seq_len=args.seq_len,
                                 seed=args.seed, image_size=args.image_size,
                                 progress=not args.no_progress)
        arrays = kth.load_test_set(path)
    except _DATA_ERRORS as err:
        return _fail(err)
    print(f"Wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in "
          f"{_elapsed(start)}: KTH test set, seed {args.seed}")
    for name, a in arrays.items():
        print(f"  {name:<9} {a.dtype!s:<5} {tuple(a.shape)}")
    return 0


def run_human_convert(args: argparse.Namespace) -> int:
    """Handler of ``data human-convert``."""
    from ..data import human

    start = time.perf_counter()
    try:
        info = human.convert_human(args.data_dir, args.out, args.image_size,
                                   folds=tuple(args.folds), overwrite=args.overwrite,
                                   progress=not args.no_progress)
    except _DATA_ERRORS as err:
        return _fail(err)
    print(f"Human3.6M converted in {_elapsed(start)}:")
    for fold, item in info.items():
        print(f"  {fold:<5} {item['path']}: {item['videos']} videos, "
              f"{item['frames']} frames (all kept)")
    return 0


def run_human_testset(args: argparse.Namespace) -> int:
    """Handler of ``data human-testset``."""
    from ..data import human

    start = time.perf_counter()
    try:
        folder = human.make_test_set(args.data_dir, args.size, args.seq_len,
                                     args.subsampling, args.seed, args.overwrite,
                                     progress=not args.no_progress)
    except _DATA_ERRORS as err:
        return _fail(err)
    stored = human.span(args.seq_len, args.subsampling)
    print(f"Wrote {folder} in {_elapsed(start)}: {args.size} clips of "
          f"{args.seq_len} frames (one in {args.subsampling}; {stored} stored with "
          f"the intermediate frames), seed {args.seed}")
    return 0


def run_bair_download(args: argparse.Namespace) -> int:
    """Handler of ``data bair-download``."""
    from ..data import bair

    try:
        folder = bair.download_bair(args.out, keep_archive=args.keep_archive,
                                    progress=not args.no_progress)
    except _DATA_ERRORS as err:
        return _fail(err)
    for split in ("train", "test"):
        files = list((folder / split).glob("*")) if (folder / split).is_dir() else []
        print(f"{folder / split}: {len(files)} files")
    return 0


def run_bair_convert(args: argparse.Namespace) -> int:
    """Handler of ``data bair-convert``."""
    from ..data import bair

    start = time.perf_counter()
    try:
        info = bair.convert_bair(args.data_dir, args.out, splits=tuple(args.splits),
                                 overwrite=args.overwrite, verify=not args.no_verify,
                                 progress=not args.no_progress)
    except _DATA_ERRORS as err:
        return _fail(err)
    print(f"BAIR converted in {_elapsed(start)}:")
    for split, item in info.items():
        print(f"  {split:<5} {item['path']}: {item['videos']} videos of 30 frames "
              f"from {item['files']} files")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry point: ``python -m srvp.cli.data data ...``."""
    parser = argparse.ArgumentParser(prog="srvp")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
