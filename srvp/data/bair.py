"""BAIR robot pushing (action-free): download, conversion, split, clips, test set.

See book ch. 1. The protocol of the official SRVP code (``data/bair.py``,
``preprocessing/bair/convert.py``, after SVG):

- :func:`download_bair` fetches ``bair_robot_pushing_dataset_v0.tar`` (about
  30 GB) and extracts ``softmotion30_44k/{train,test}/*.tfrecords``;
- each TFRecord holds ``tf.train.Example`` messages, one per video, with the
  features ``<i>/image_aux1/encoded`` for ``i`` = 0..29: one 64x64 RGB frame each,
  stored as *raw* bytes (64 * 64 * 3, row-major; the official converter reads
  them with ``Image.frombytes``). Compressed frames (JPEG, PNG) are decoded with
  Pillow as a fallback. The other features (``image_main``, ``action``,
  ``endeffector_pos``) are not used;
- conversion (:func:`convert_bair`) reads them with :mod:`srvp.data.tfrecord`
  (no TensorFlow) into ``processed/<split>/<record file>.npy``, uint8
  (n_videos, 30, 64, 64, 3). Videos keep the official order: record files sorted
  by name, then records in file order (the official PNG folders
  ``processed_data/<split>/<file>/<k:03d>/`` sort the same way);
- train/test: the dataset's own folders; 5% of the training videos are held out
  for validation with the official seed-42 split;
- training clips (:class:`Bair`): a random video, a random start, 12 frames
  (2 conditioning + 10 predicted); test (:class:`BairTestSet`): the first 30
  frames of each test video (256 videos in the standard split).

Memory: the training set is about 43,000 videos of 30 x 12 KiB, 16 GB. Both
classes memory-map the ``.npy`` files by default (``mmap=True``), reading only
the frames served; the test set is 94 MB.
"""

from __future__ import annotations

import io
import os
import tarfile
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import download
from . import steps
from .common import InvalidTestSetError, output_folder, split_indices
from .steps import Step
from .tfrecord import TFRecordError, read_examples
from .video_io import (
    ArchiveError,
    FixedVideos,
    LazyArrays,
    VideoClips,
    atomic_dir,
    open_npy,
    read_npy_header,
    require_pil,
    save_npy,
    sorted_files,
)

URL = "http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar"
ARCHIVE = "bair_robot_pushing_dataset_v0.tar"
#: Size cap of the archive (about 30 GB), and the time it may take by default
#: (seconds: 24 h, some 350 kB/s).
MAX_BYTES, DEADLINE = 48 << 30, 24 * 3600.0
N_FRAMES = 30
FRAME_SHAPE = (64, 64, 3)
CAMERA = "image_aux1"


# ------------------------------------------------------------------ download
def _safe_members(archive: tarfile.TarFile, tar_path: Path) -> list[tarfile.TarInfo]:
    """Regular files under ``softmotion30_44k/``; refuse unsafe paths."""
    members = []
    for member in archive.getmembers():
        try:
            download.check_member(member.name, str(tar_path))
        except ValueError as err:
            raise ArchiveError(str(err)) from None
        parts = Path(member.name).parts
        if len(parts) > 1 and parts[0] == "softmotion30_44k" and member.isfile():
            members.append(member)
    if not members:
        raise ArchiveError(f"{tar_path}: no softmotion30_44k/ files inside")
    return members


def extract_bair(tar_path: str | os.PathLike, out_dir: str | os.PathLike,
                 overwrite: bool = False) -> Path:
    """Extract ``softmotion30_44k/`` from the BAIR tar into ``out_dir`` (atomically)."""
    tar_path, out_dir = Path(tar_path), Path(out_dir).expanduser()
    with atomic_dir(out_dir / "softmotion30_44k", overwrite) as tmp:
        try:
            with tarfile.open(tar_path) as archive:
                members = _safe_members(archive, tar_path)
                for member in members:
                    member.name = str(Path(*Path(member.name).parts[1:]))
                    archive.extract(member, tmp, set_attrs=False, **download.TAR_FILTER)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ArchiveError(f"{tar_path}: truncated or corrupt tar ({err}); "
                               "download it again") from err
    return out_dir / "softmotion30_44k"


def download_bair(out_dir: str | os.PathLike, url: str = URL,
                  keep_archive: bool = False, timeout: float | None = None,
                  progress: bool = True, deadline: float | None = DEADLINE) -> Path:
    """Download the BAIR tar into ``out_dir`` and extract ``softmotion30_44k/``.

    The archive goes through :func:`srvp.download.fetch`: capped at
    :data:`MAX_BYTES`, refused if it is an HTML page or not a whole tar, and
    renamed into ``out_dir`` only then. A ``softmotion30_44k/`` already
    extracted is kept (no request); an archive already in ``out_dir`` is
    reused, and removed if it turns out corrupt. Needs internet: offline the
    connection fails within ``timeout`` seconds (default of :mod:`srvp.download`)
    with a :class:`~srvp.download.DownloadError`, and an ``out_dir`` made for
    the download is removed again. ``deadline``: seconds the archive may take.
    Returns the extracted folder.
    """
    out_dir = Path(out_dir).expanduser()
    tar_path = out_dir / ARCHIVE
    if (out_dir / "softmotion30_44k").is_dir():
        return out_dir / "softmotion30_44k"  # extracted before: no request
    with download.own_folder(out_dir):
        if not tar_path.is_file():
            download.fetch(url, tar_path, max_bytes=MAX_BYTES, timeout=timeout,
                           deadline=deadline, progress=progress)
        try:
            folder = extract_bair(tar_path, out_dir)
        except ArchiveError as err:
            tar_path.unlink()  # kept, it would fail the same way next time
            raise ArchiveError(f"{err} (the archive was removed)") from err
    if not keep_archive:
        tar_path.unlink()
    return folder


# ---------------------------------------------------------------- conversion
def decode_frame(data: bytes) -> np.ndarray:
    """One frame, uint8 (64, 64, 3), from raw RGB bytes (or a JPEG/PNG image)."""
    if len(data) == int(np.prod(FRAME_SHAPE)):
        return np.frombuffer(data, dtype=np.uint8).reshape(FRAME_SHAPE)
    image_cls = require_pil()
    try:
        frame = np.asarray(image_cls.open(io.BytesIO(data)).convert("RGB"))
    except (OSError, ValueError) as err:
        raise TFRecordError(f"a frame of {len(data)} bytes is neither raw 64x64 RGB "
                            f"nor a readable image ({err})") from err
    if frame.shape != FRAME_SHAPE:
        raise TFRecordError(f"frame of shape {frame.shape}, expected {FRAME_SHAPE}")
    return frame


def read_videos(path: str | os.PathLike, camera: str = CAMERA,
                n_frames: int = N_FRAMES, verify: bool = True) -> np.ndarray:
    """All videos of one TFRecord file, uint8 (n_videos, n_frames, 64, 64, 3)."""
    keys = [f"{i}/{camera}/encoded" for i in range(n_frames)]
    videos = []
    for k, example in enumerate(read_examples(path, keys=keys, verify=verify)):
        missing = [key for key in keys if len(example.get(key, [])) == 0]
        if missing:
            raise TFRecordError(f"{path}: record {k} has no feature {missing[0]!r}")
        try:
            videos.append(np.stack([decode_frame(example[key][0]) for key in keys]))
        except TFRecordError as err:
            raise TFRecordError(f"{path}: record {k}: {err}") from None
    if not videos:
        raise TFRecordError(f"{path}: no record")
    return np.stack(videos)


def record_files(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """The TFRecord files of ``data_dir/softmotion30_44k/<split>``, sorted."""
    folder = Path(data_dir).expanduser() / "softmotion30_44k" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: download and extract the BAIR "
                                "archive first (python -m srvp data bair-download)")
    files = sorted(p for p in folder.iterdir() if p.is_file()
                   and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"no data file in {folder}")
    return files


def convert_bair(data_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 splits=("train", "test"), camera: str = CAMERA,
                 overwrite: bool = False, verify: bool = True,
                 progress: bool = True) -> dict:
    """Convert the TFRecords into ``out_dir/processed/<split>/<file>.npy``.

    Each split folder appears only once all its files are converted: a truncated
    or corrupt record (bad CRC, short read, missing frame) raises
    :class:`~srvp.data.tfrecord.TFRecordError` and leaves nothing of that split.
    ``out_dir`` defaults to ``data_dir``; ``verify=False`` skips the data CRCs.

    Returns
    -------
    dict
        Per split: ``path``, ``files`` and ``videos`` (counts).
    """
    out = output_folder(data_dir, out_dir)
    jobs = {split: record_files(data_dir, split) for split in splits}
    summary = {}
    for split, files in jobs.items():
        target = out / "processed" / split
        info = summary[split] = {"path": target, "files": len(files), "videos": 0}
        with atomic_dir(target, overwrite) as tmp:
            bar = tqdm(files, desc=f"BAIR {split}", unit="file", disable=not progress)
            for path in bar:
                videos = read_videos(path, camera, verify=verify)
                save_npy(tmp / f"{path.stem}.npy", videos)
                info["videos"] += len(videos)
                bar.set_postfix(videos=info["videos"])
    return summary


# ------------------------------------------------------------ processed data
class VideoRows:
    """Videos stored as the rows of several (n_k, T, H, W, C) ``.npy`` files."""

    def __init__(self, paths, mmap: bool = True):
        counts, self.lengths = [], []
        for path in paths:
            shape, dtype = read_npy_header(path)
            if len(shape) != 5 or shape[2:] != FRAME_SHAPE or dtype != np.uint8:
                raise ValueError(f"{path}: expected uint8 (n, T, 64, 64, 3) videos, "
                                 f"got {dtype} {shape}")
            counts.append(shape[0])
            self.lengths.append(shape[1])
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.arrays = LazyArrays(paths, partial(open_npy, mmap=mmap), preload=not mmap)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.arrays[k][index - self.offsets[k]]

    def video_lengths(self) -> np.ndarray:
        """Frames per video (one value per row)."""
        return np.repeat(self.lengths, np.diff(self.offsets))


def processed_files(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """The converted ``.npy`` files of a split, sorted (``data_dir/processed/<split>``).

    ``data_dir`` may also be the split folder itself.
    """
    data_dir = Path(data_dir).expanduser()
    folder = data_dir if data_dir.name == split else data_dir / "processed" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: run python -m srvp data "
                                "bair-convert first")
    files = sorted_files(folder, (".npy",))
    if not files:
        raise FileNotFoundError(f"no converted BAIR file in {folder}")
    return files


class Bair(VideoClips):
    """Random BAIR training or validation clips, uint8 (n, T, 3, 64, 64)."""

    @classmethod
    def from_dir(cls, data_dir: str | os.PathLike, fold: str = "train",
                 seq_len: int = 12, mmap: bool = True) -> "Bair":
        """Clips of ``data_dir/processed/train``: fold ``"train"`` (95%),
        ``"val"`` (5%, official seed-42 split) or ``"all"``."""
        rows = VideoRows(processed_files(data_dir, "train"), mmap)
        ids = np.arange(len(rows))
        if fold != "all":
            ids = split_indices(len(rows), fold)
        videos = _Subset(rows, ids)
        return cls(videos, rows.video_lengths()[ids], seq_len)


class _Subset:
    """``rows[ids[i]]`` as item ``i``."""

    def __init__(self, rows: VideoRows, ids: np.ndarray):
        self.rows, self.ids = rows, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.rows[int(self.ids[index])]


class BairTestSet(FixedVideos):
    """The BAIR test videos (first ``seq_len`` of 30 frames), uint8 (T, 3, 64, 64).

    Parameters
    ----------
    path : path-like
        The data folder (with ``processed/test``) or the ``test`` folder itself.
    seq_len : int, optional
        Frames served (default: 30).
    mmap : bool
        Memory-map the files (else load the 94 MB in memory).
    """

    def __init__(self, path, seq_len: int | None = None, mmap: bool = True):
        self.path = Path(path).expanduser()
        try:
            self.rows = VideoRows(processed_files(self.path, "test"), mmap)
        except ValueError as err:
            raise InvalidTestSetError(str(err)) from err
        self.max_len = int(min(self.rows.lengths))
        self.seq_len = self.max_len if seq_len is None else seq_len

    def __len__(self) -> int:
        return len(self.rows)

    def _video(self, index: int, seq_len: int) -> np.ndarray:
        return self.rows[index][:seq_len]


# --------------------------------------------------- `python -m srvp data` steps
_DOWNLOAD_DESC = """\
Download bair_robot_pushing_dataset_v0.tar (about 30 GB) from the dataset's
site into OUT and extract OUT/softmotion30_44k/{train,test}/*.tfrecords (an
archive already there is reused). The archive enters OUT only once whole (no
HTML page, no truncated tar); a failed download leaves no partial file and no
folder it made. Needs internet: offline it fails at once."""

_CONVERT_DESC = """\
Convert the BAIR TFRecords (DATA/softmotion30_44k/{train,test}) without
TensorFlow: frames '<i>/image_aux1/encoded', i = 0..29, 64x64 RGB, record and
CRC checks on. Writes OUT/processed/<split>/<file>.npy, uint8
(n_videos, 30, 64, 64, 3), in the official video order. Each split folder
appears only when complete."""


def _report_download(folder: Path, args, seconds: float):
    for split in ("train", "test"):
        files = list((folder / split).glob("*")) if (folder / split).is_dir() else []
        yield f"{folder / split}: {len(files)} files"


def _report_convert(info: dict, args, seconds: float):
    yield f"BAIR converted in {seconds:.1f} s:"
    for split, item in info.items():
        yield (f"  {split:<5} {item['path']}: {item['videos']} videos of 30 frames "
               f"from {item['files']} files")


#: The ``python -m srvp data`` sub-commands of BAIR (see :mod:`srvp.data.steps`).
STEPS = (
    Step("bair-download", "download the BAIR TFRecords", _DOWNLOAD_DESC,
         (steps.out_dir("dataset folder", required=True),
          steps.option("--keep-archive", action="store_true",
                       help="keep the .tar after extraction"),
          steps.NO_PROGRESS),
         run=lambda a: download_bair(a.out, keep_archive=a.keep_archive,
                                     progress=a.progress, timeout=a.timeout,
                                     deadline=a.deadline or DEADLINE),
         report=_report_download),
    Step("bair-convert", "convert BAIR TFRecords to arrays", _CONVERT_DESC,
         (*steps.CONVERT,
          steps.option("--splits", nargs="+", choices=("train", "test"),
                       default=["train", "test"], help="splits (default both)"),
          steps.option("--no-verify", action="store_true",
                       help="skip the record data CRCs (faster)"),
          steps.NO_PROGRESS),
         run=lambda a: convert_bair(a.data_dir, a.out, splits=tuple(a.splits),
                                    overwrite=a.overwrite, verify=not a.no_verify,
                                    progress=a.progress),
         report=_report_convert),
)
