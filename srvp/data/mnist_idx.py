"""MNIST digits from IDX files: locate, validate, read and (optionally) download.

The Moving MNIST datasets of this package (see book ch. 1) draw their digits from the
original MNIST files, in the IDX format of LeCun et al.: a big-endian header (two
zero bytes, a type code, the number of dimensions, then one 32-bit size per
dimension) followed by the raw values. Files may be gzip-compressed or raw.

The directory holding the files is given as an argument or through the environment
variable ``SRVP_MNIST_DIR``. Two families of names are recognised:

- the standard names, ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
- the offline subset of 5,000 training digits, ``train5k-...-ubyte[.gz]``, used
  for the ``"train"`` split when the full training files are absent.

The official seed-42 95% / 5% train/validation split of the training digits is
:func:`srvp.data.common.split_indices`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ..fileio import atomic_file
from . import steps
from .steps import Step

ENV_VAR = "SRVP_MNIST_DIR"

#: Mirrors tried in order by :func:`download_mnist`.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: MD5 checksums of the four standard gzip files, as published with MNIST.
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: File-name prefixes tried for each split, in order of preference.
SPLIT_PREFIXES = {"train": ("train", "train5k"), "train5k": ("train5k",),
                  "test": ("t10k",)}

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
              0x0D: ">f4", 0x0E: ">f8"}


class MNISTNotFoundError(FileNotFoundError):
    """The MNIST IDX files are missing (and could not be downloaded)."""


class IDXFormatError(ValueError):
    """An IDX file is corrupt: wrong magic number, wrong dimensions or truncated."""


def _file_names(prefix: str) -> tuple[str, str]:
    """Base names (without ``.gz``) of the image and label files of a prefix."""
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def resolve_mnist_dir(mnist_dir: str | os.PathLike | None = None) -> Path:
    """Return the MNIST directory: the argument, else ``$SRVP_MNIST_DIR``.

    Raises
    ------
    MNISTNotFoundError
        If neither the argument nor the environment variable is set.
    """
    if mnist_dir is None:
        mnist_dir = os.environ.get(ENV_VAR)
    if not mnist_dir:
        raise MNISTNotFoundError(
            f"no MNIST folder given, and {ENV_VAR} is not set: give a folder holding "
            "the IDX files (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, "
            f"...) or set {ENV_VAR} to one."
        )
    return Path(mnist_dir).expanduser()


def _find_file(directory: Path, base: str) -> Path | None:
    """Return ``directory/base.gz`` or ``directory/base``, whichever exists."""
    for name in (base + ".gz", base):
        if (directory / name).is_file():
            return directory / name
    return None


def find_split_files(directory: Path, split: str) -> tuple[Path, Path] | None:
    """Image and label files of ``split`` in ``directory``, or None if absent."""
    if split not in SPLIT_PREFIXES:
        raise ValueError(f"Unknown MNIST split {split!r}; use one of "
                         f"{sorted(SPLIT_PREFIXES)}")
    for prefix in SPLIT_PREFIXES[split]:
        found = [_find_file(directory, base) for base in _file_names(prefix)]
        if all(found):
            return found[0], found[1]
    return None


def _missing_message(directory: Path, split: str) -> str:
    """Explain which files to put where, for a missing split."""
    options = " or ".join(
        "{" + ", ".join(f"{b}.gz" for b in _file_names(p)) + "}"
        for p in SPLIT_PREFIXES[split]
    )
    return (
        f"MNIST {split!r} files not found in {directory}. Put {options} (gzip or "
        f"raw IDX) in that folder, or give (or point {ENV_VAR} to) a folder holding "
        "them; `python -m srvp data mnist-download --out DIR` fetches them where "
        "the internet is reachable."
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip or raw) into an array, validating its header.

    Parameters
    ----------
    path : path-like
        The file. Gzip compression is detected from its first bytes.

    Returns
    -------
    np.ndarray
        Array with the dimensions stored in the header, e.g. (N, 28, 28) uint8
        for images and (N,) uint8 for labels.

    Raises
    ------
    IDXFormatError
        Wrong magic number, unknown type code, or a size that does not match the
        header (truncated or trailing bytes), or a corrupt gzip stream.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise IDXFormatError(
            f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; "
            "expected 0000 then a type byte and the number of dimensions)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXFormatError(
            f"{path}: {len(raw)} bytes but the header {dims} announces {expected} "
            "(truncated or corrupt file)"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _check_pair(images: np.ndarray, labels: np.ndarray, paths) -> None:
    """Check that an image and a label array form a valid MNIST split."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise IDXFormatError(f"{paths[0]}: expected uint8 images (N, 28, 28), got "
                             f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IDXFormatError(f"{paths[1]}: expected uint8 labels (N,), got "
                             f"{labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise IDXFormatError(f"{paths[0]} has {len(images)} images but {paths[1]} "
                             f"has {len(labels)} labels")


def load_mnist(
    mnist_dir: str | os.PathLike | None = None,
    split: str = "test",
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits and labels of one split.

    Parameters
    ----------
    mnist_dir : path-like, optional
        Folder of the IDX files; defaults to ``$SRVP_MNIST_DIR``.
    split : {"train", "test", "train5k"}
        ``"train"`` uses the full training files when present, else the 5k subset.
    download : bool
        Download the standard files into ``mnist_dir`` when they are missing.

    Returns
    -------
    images : np.ndarray
        (N, 28, 28) uint8.
    labels : np.ndarray
        (N,) uint8.
    """
    directory = resolve_mnist_dir(mnist_dir)
    files = find_split_files(directory, split)
    if files is None and download and split != "train5k":
        download_mnist(directory, splits=(split,))
        files = find_split_files(directory, split)
    if files is None:
        raise MNISTNotFoundError(_missing_message(directory, split))
    images, labels = read_idx(files[0]), read_idx(files[1])
    _check_pair(images, labels, files)
    return images, labels


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str, timeout: float) -> None:
    """Download ``url`` to a temporary file, check its MD5, rename it to ``target``."""
    with atomic_file(target) as tmp:
        with open(tmp, "wb") as out:
            response = urllib.request.urlopen(url, timeout=timeout)
            with response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
        if md5sum(tmp) != md5:
            raise OSError(f"MD5 mismatch for {url}")


def download_mnist(
    out_dir: str | os.PathLike,
    splits: tuple[str, ...] = ("train", "test"),
    mirrors: tuple[str, ...] | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Download the standard MNIST gzip files, verifying their MD5 checksums.

    Files already present with the right checksum are kept. Each file is written
    to a temporary name in ``out_dir`` and renamed once verified.

    Parameters
    ----------
    out_dir : path-like
        Destination folder (created if needed).
    splits : tuple of {"train", "test"}
        Which splits to fetch.
    mirrors : tuple of str, optional
        Base URLs tried in order (default :data:`MIRRORS`).
    timeout : float
        Seconds per connection attempt.

    Returns
    -------
    list of Path
        The verified files.

    Raises
    ------
    MNISTNotFoundError
        If a file cannot be fetched from any mirror (e.g. offline).
    """
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    prefixes = {"train": "train", "test": "t10k"}
    unknown = set(splits) - set(prefixes)
    if unknown:
        raise ValueError(f"Cannot download MNIST splits {sorted(unknown)}; "
                         "use 'train' and/or 'test'")
    names = [f"{b}.gz" for s in splits for b in _file_names(prefixes[s])]
    mirrors = MIRRORS if mirrors is None else mirrors
    for name in names:
        target = out_dir / name
        if target.is_file() and md5sum(target) == MD5[name]:
            continue
        errors = []
        for mirror in mirrors:
            try:
                _fetch(mirror + name, target, MD5[name], timeout)
                break
            except OSError as err:  # URLError, timeouts and bad checksums
                errors.append(f"{mirror}{name}: {err}")
        else:
            raise MNISTNotFoundError(
                f"Could not download {name} ({'; '.join(errors)}). Offline? Copy "
                f"the MNIST files ({', '.join(names)}) into {out_dir} by hand, or "
                f"set {ENV_VAR} to a folder that holds them."
            )
    return [out_dir / name for name in names]



def command_line_hint(err: BaseException, option: str = "--data-dir") -> str:
    """What a command adds to a missing-MNIST error: its own option's name (the
    library's messages name none); nothing for other errors."""
    if isinstance(err, MNISTNotFoundError):
        return f" On the command line: {option} DIR."
    return ""


# --------------------------------------------------- `python -m srvp data` steps
def _report_download(paths: list[Path], args, seconds: float):
    return [f"{path}  md5 {md5sum(path)}  ok" for path in paths]


#: The ``mnist-download`` sub-command (see :mod:`srvp.data.steps`).
STEPS = (
    Step("mnist-download", "download the MNIST IDX files (MD5-checked)",
         f"""\
Download the standard MNIST IDX files (gzip) into OUT, trying the mirrors
{', '.join(MIRRORS)} in turn and checking the published MD5 sums. Needs
internet; offline, copy the files by hand and point {ENV_VAR} to them.""",
         (steps.out_dir("folder where the four .gz files are written",
                        required=True),
          steps.option("--split", choices=("train", "test", "all"), default="all",
                       help="which split to fetch (default: all)")),
         run=lambda a: download_mnist(a.out, splits=("train", "test")
                                      if a.split == "all" else (a.split,)),
         report=_report_download),
)
