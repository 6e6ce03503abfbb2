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
import os
import zlib
from pathlib import Path

import numpy as np

from .. import download
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

#: Size cap of each downloaded file (the largest, the training images, is
#: 9.9 MB); what an IDX file may declare once decompressed (MNIST: 47 MB).
MAX_BYTES, MAX_IDX_BYTES = 32 << 20, 256 << 20

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

    The header is read first: a file that declares more than
    :data:`MAX_IDX_BYTES` of values is refused, and no more than the declared
    size is ever decompressed, so a gzip bomb fails with a clear error instead
    of filling the memory.

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
        Wrong magic number, unknown type code, an absurd declared size, a size
        that does not match the header (truncated or trailing bytes), or a
        corrupt gzip stream.
    """
    path = Path(path)
    with open(path, "rb") as raw_file:
        packed = raw_file.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path) if packed else open(path, "rb")) as f:
            dims, dtype, header = _read_idx_header(f, path)
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            raw = f.read(expected + 1)  # one byte more: trailing data shows
    except (OSError, EOFError, zlib.error) as err:
        if not packed:
            raise
        raise IDXFormatError(f"{path}: corrupt or truncated gzip ({err})") from err
    if len(raw) != expected:
        more = "more" if len(raw) > expected else "fewer"
        raise IDXFormatError(
            f"{path}: {more} bytes than the {header + expected} that the header "
            f"{dims} announces (truncated or corrupt file)")
    data = np.frombuffer(raw, dtype).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _read_idx_header(f, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Dimensions, value type and header length of an open IDX stream."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise IDXFormatError(
            f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'}; "
            "expected 0000 then a type byte and the number of dimensions)"
        )
    ndim, dtype = magic[3], np.dtype(_IDX_TYPES[magic[2]])
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXFormatError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(sizes, ">u4", ndim))
    declared = int(np.prod(dims, dtype=np.float64)) * dtype.itemsize
    if declared > MAX_IDX_BYTES:
        raise IDXFormatError(
            f"{path}: the header declares {dims} values of {dtype.itemsize} "
            f"byte(s), over the {MAX_IDX_BYTES:,} bytes an IDX file may hold "
            "here: a corrupt or hostile file; replace it with the real one")
    return dims, dtype, 4 + 4 * ndim


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


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file."""
    return download.file_digest(path, "md5")


def download_mnist(
    out_dir: str | os.PathLike,
    splits: tuple[str, ...] = ("train", "test"),
    mirrors: tuple[str, ...] | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download the standard MNIST gzip files, verifying their MD5 checksums.

    Files already present with the right checksum are kept. Each file goes
    through :func:`srvp.download.fetch`: written to a temporary name in
    ``out_dir``, capped at :data:`MAX_BYTES`, checked (no HTML page, a whole
    gzip stream, the published MD5) and only then renamed; an ``out_dir``
    created here is removed again when nothing could be fetched.

    Parameters
    ----------
    out_dir : path-like
        Destination folder (created if needed).
    splits : tuple of {"train", "test"}
        Which splits to fetch.
    mirrors : tuple of str, optional
        Base URLs tried in order (default :data:`MIRRORS`).
    timeout, deadline : float, optional
        Seconds without a byte, and for each whole file (defaults of
        :mod:`srvp.download`).
    progress : bool
        Progress bars on stderr.

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
    prefixes = {"train": "train", "test": "t10k"}
    unknown = set(splits) - set(prefixes)
    if unknown:
        raise ValueError(f"Cannot download MNIST splits {sorted(unknown)}; "
                         "use 'train' and/or 'test'")
    names = [f"{b}.gz" for s in splits for b in _file_names(prefixes[s])]
    mirrors = MIRRORS if mirrors is None else mirrors
    with download.own_folder(out_dir):
        for name in names:
            target = out_dir / name
            if target.is_file() and md5sum(target) == MD5[name]:
                continue
            errors = []
            for mirror in mirrors:
                try:
                    download.fetch(mirror + name, target, max_bytes=MAX_BYTES,
                                   digest=("md5", MD5[name]), timeout=timeout,
                                   deadline=deadline, progress=progress)
                    break
                except download.DownloadError as err:
                    errors.append(f"{err.url}: {err.reason}")
            else:
                raise MNISTNotFoundError(
                    f"Could not download {name} ({'; '.join(errors)}). Offline? "
                    f"Copy the MNIST files ({', '.join(names)}) into {out_dir} by "
                    f"hand, or set {ENV_VAR} to a folder that holds them.")
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
{', '.join(MIRRORS)} in turn and checking the published MD5 sums. A file
enters OUT only once whole and checked; a failed download leaves nothing (not
even OUT, if it made it). Needs internet; offline, copy the files by hand and
point {ENV_VAR} to them.""",
         (steps.out_dir("folder where the four .gz files are written",
                        required=True),
          steps.option("--split", choices=("train", "test", "all"), default="all",
                       help="which split to fetch (default: all)"),
          steps.NO_PROGRESS),
         run=lambda a: download_mnist(a.out, splits=("train", "test")
                                      if a.split == "all" else (a.split,),
                                      timeout=a.timeout, deadline=a.deadline,
                                      progress=a.progress),
         report=_report_download),
)
