"""Shared helpers of the video datasets: decoding, resizing, atomic writes, clips.

Used by the KTH, Human3.6M and BAIR modules (book ch. 1):

- :func:`decode_video` decodes a video file with PyAV (FFmpeg's libraries) into
  uint8 RGB frames, optionally resized by FFmpeg's scaler (bicubic, as the
  ``ffmpeg -s WxH`` command of the official preprocessing);
- :func:`crop_resize` crops and resizes a frame with Pillow (Lanczos);
- :func:`atomic_file` and :func:`atomic_dir` write under a temporary name and
  rename at the end, so that an error never leaves a partial output behind;
- downloads go through :func:`srvp.download.fetch` (size cap, stall timeout,
  deadline, content checks); its :class:`~srvp.download.DownloadError` is
  importable from here too;
- :class:`VideoClips` draws random fixed-length clips (training and validation
  sources) and :class:`FixedVideos` serves fixed test videos.

Videos are uint8 arrays (T, H, W) or (T, H, W, C) on disk; every source and test
set serves them as (T, C, H, W), batched by :func:`srvp.data.collate_fn`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..download import DownloadError  # noqa: F401 (this module's name for it)
from ..fileio import atomic_file


class VideoDecodeError(ValueError):
    """A video file cannot be decoded (corrupt, truncated or not a video)."""


class ArchiveError(ValueError):
    """A downloaded archive (zip, tar) is truncated or corrupt."""


def require_av():
    """Import PyAV, or raise an ``ImportError`` that says how to install it."""
    try:
        import av
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("decoding videos needs PyAV: pip install av (or "
                          "pip install 'srvp[video]')") from err
    return av


def require_pil():
    """Import Pillow's ``Image``, or raise an ``ImportError`` that says how."""
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("this step needs Pillow: pip install pillow") from err
    return Image


# ----------------------------------------------------------------- decoding
def iter_frames(path: str | os.PathLike,
                size: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video file as uint8 RGB arrays (H, W, 3).

    Parameters
    ----------
    path : path-like
        Any container and codec FFmpeg reads (AVI, MP4, ...).
    size : int, optional
        Resize every frame to ``size`` x ``size`` with FFmpeg's bicubic scaler
        (whole frame, aspect ratio not kept), in the same call that converts the
        colours to RGB, as ``ffmpeg -i VIDEO -s SIZExSIZE`` does.

    Raises
    ------
    VideoDecodeError
        If the file cannot be opened or decoded.
    """
    av = require_av()
    if not Path(path).is_file():
        raise FileNotFoundError(f"no video file at {path}")
    errors = getattr(av, "FFmpegError", None) or av.error.FFmpegError
    opts = {"format": "rgb24", "interpolation": "BICUBIC"}
    if size is not None:
        opts.update(width=int(size), height=int(size))
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(**opts)
    except errors as err:
        raise VideoDecodeError(f"{path}: cannot decode the video ({err})") from err


def decode_video(path: str | os.PathLike, size: int | None = None,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> np.ndarray:
    """Decode a whole video into one uint8 array (T, H, W, C).

    ``transform`` is applied to each RGB frame (H, W, 3) first (e.g.
    :func:`crop_resize`); only the transformed frames are kept in memory.
    Raises :class:`VideoDecodeError` for unreadable files and for empty videos.
    """
    frames = [f if transform is None else transform(f) for f in iter_frames(path, size)]
    if not frames:
        raise VideoDecodeError(f"{path}: the video has no frame")
    return np.stack(frames)


def crop_resize(frame: np.ndarray, box: tuple[int, int, int, int],
                size: int) -> np.ndarray:
    """Crop ``box`` = (left, upper, right, lower) and resize to size x size (Lanczos).

    Pillow's ``Image.crop`` then ``Image.resize(..., LANCZOS)``, sequentially, as
    the official Human3.6M preprocessing. Regions of the box outside the frame
    are black.
    """
    image_cls = require_pil()
    lanczos = getattr(image_cls, "Resampling", image_cls).LANCZOS
    image = image_cls.fromarray(frame).crop(box).resize((size, size), resample=lanczos)
    return np.asarray(image)


# ------------------------------------------------------------ atomic output
def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save ``array`` as a ``.npy`` file, atomically; return the path."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    return Path(path)


def savez(path: str | os.PathLike, compressed: bool = False, **arrays) -> Path:
    """Save arrays in a ``.npz`` file (compressed or not), atomically."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        save(f, **arrays)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` if the block succeeds.

    Raises ``FileExistsError`` before any work if ``target`` exists and
    ``overwrite`` is false. On an exception the temporary folder is deleted and
    an existing ``target`` is kept as it was.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists: remove it or overwrite it "
                              "(--overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.",
                                suffix=".part"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ------------------------------------------------------------ stored arrays
def _read_header(f, where) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an open ``.npy`` stream positioned at its start."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        reader = {(1, 0): fmt.read_array_header_1_0,
                  (2, 0): fmt.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = reader(f)
    except ValueError as err:
        raise ValueError(f"{where}: not a readable .npy array ({err})") from err
    return shape, dtype


def read_npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file, from its header only."""
    with open(path, "rb") as f:
        return _read_header(f, path)


def read_npz_header(path: str | os.PathLike, key: str
                    ) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` of a ``.npz`` file, from its header only."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as f:
            return _read_header(f, f"{path}[{key}]")
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise ValueError(f"{path}: no readable array {key!r} ({err})") from err


def open_npy(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` array, memory-mapped read-only (``mmap``) or loaded."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def sorted_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Regular, non-hidden files of ``folder`` with one of ``suffixes``, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and p.suffix in suffixes and not p.name.startswith("."))


class LazyArrays:
    """A sequence of arrays opened from their files on first access.

    ``opener(path)`` returns the array (e.g. a memory map). Opened arrays are not
    pickled (unless ``preload``): a DataLoader worker started by ``spawn`` reopens
    its own maps instead of receiving copies of the data.
    """

    def __init__(self, paths: Sequence[Path], opener: Callable, preload: bool = False):
        self.paths, self.opener, self.preload = list(paths), opener, preload
        self._cache: dict[int, np.ndarray] = {}
        if preload:
            for i in range(len(self.paths)):
                self[i]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self._cache:
            self._cache[index] = self.opener(self.paths[index])
        return self._cache[index]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if not self.preload:
            state["_cache"] = {}
        return state


# ------------------------------------------------------------ clip sources
class VideoClips:
    """Random fixed-length clips of a set of videos (training and validation).

    A clip is drawn as in the official loaders: a video chosen uniformly among
    those with at least ``(seq_len - 1) * stride + 1`` frames, a uniform start,
    then every ``stride``-th frame (``stride`` is Human3.6M's subsampling).

    Parameters
    ----------
    videos : sequence
        ``videos[i]`` is an array (T_i, H, W) or (T_i, H, W, C), uint8; memory-mapped
        arrays are read only where a clip falls.
    lengths : sequence of int
        ``T_i`` of each video (known without reading the frames).
    seq_len : int
        Frames per clip.
    stride : int
        Keep one frame in ``stride``.
    """

    def __init__(self, videos, lengths, seq_len: int, stride: int = 1):
        self.videos, self.lengths = videos, np.asarray(lengths, dtype=np.int64)
        if len(self.lengths) == 0:
            raise ValueError("no video to draw clips from")
        self.stride = int(stride)
        self.seq_len = seq_len

    @property
    def seq_len(self) -> int:
        """Frames per clip; videos too short for it are never drawn."""
        return self._seq_len

    @seq_len.setter
    def seq_len(self, value: int) -> None:
        span = (int(value) - 1) * self.stride + 1
        eligible = np.flatnonzero(self.lengths >= span)
        if int(value) < 1 or eligible.size == 0:
            raise ValueError(f"no video has the {span} frames that a clip of "
                             f"{value} frames (stride {self.stride}) needs; the "
                             f"longest has {self.lengths.max()}")
        self._seq_len, self._span, self._eligible = int(value), span, eligible

    def change_seq_len(self, seq_len: int) -> None:
        """Change the clip length (e.g. longer validation clips)."""
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.lengths)

    def generate(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` clips, uint8 (n, T, C, H, W), from ``rng`` (fresh if None)."""
        rng = np.random.default_rng() if rng is None else rng
        ids = self._eligible[rng.integers(0, self._eligible.size, size=n)]
        starts = rng.integers(0, self.lengths[ids] - self._span + 1)
        clips = [self.videos[i][s:s + self._span:self.stride]
                 for i, s in zip(ids.tolist(), starts.tolist())]
        return to_tchw(np.stack(clips), batched=True)


def to_tchw(video: np.ndarray, batched: bool = False) -> np.ndarray:
    """(…, T, H, W) or (…, T, H, W, C) uint8 -> (…, T, C, H, W), contiguous."""
    base = 4 if batched else 3
    if video.ndim == base:
        return np.ascontiguousarray(np.expand_dims(video, -3))
    return np.ascontiguousarray(np.moveaxis(video, -1, -3))


class FixedVideos(torch.utils.data.Dataset):
    """Base of the fixed test sets: video ``i`` as a uint8 tensor (T, C, H, W).

    Subclasses set ``max_len`` and ``path`` and implement ``_video(index, seq_len)``
    returning a (T, H, W) or (T, H, W, C) array; :attr:`seq_len` (settable) says
    how many frames are served, as in ``MovingMNISTTestSet``.
    """

    max_len: int = 0
    path: Path | None = None

    @property
    def seq_len(self) -> int:
        """Number of frames served per video."""
        return self._seq_len

    @seq_len.setter
    def seq_len(self, value: int) -> None:
        if not 1 <= int(value) <= self.max_len:
            raise ValueError(f"seq_len must be in [1, {self.max_len}] for "
                             f"{self.path}, got {value}")
        self._seq_len = int(value)

    def change_seq_len(self, seq_len: int) -> None:
        """Change the number of frames served."""
        self.seq_len = seq_len

    def _video(self, index: int, seq_len: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int) -> torch.Tensor:
        """Test video ``index``, uint8 (T, C, H, W)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"test video {index} out of range ({len(self)})")
        return torch.from_numpy(to_tchw(self._video(index % len(self), self.seq_len)))
