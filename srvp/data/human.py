"""Human3.6M: conversion, official split, subsampled clips and test set.

See book ch. 1. The protocol of the official SRVP code (``data/human.py``,
``preprocessing/human/*``), which follows the StructVRNN authors (Minderer et al.,
2019):

- input: the subjects' videos ``S<k>/Videos/*.mp4`` (50 fps); files whose names
  start with ``_`` (the ``_ALL`` videos) are skipped;
- conversion (:func:`convert_human`): each frame is cropped to the box
  ``(100, 100, 900, 900)`` and *then* resized to 64x64 RGB with Pillow's Lanczos
  filter. All frames are kept (no subsampling at conversion): each video becomes
  ``train/S<k>-<name>.npy`` or ``test/S<k>-<name>.npy``, uint8 (T, 64, 64, 3).
  The official script writes the same array as key ``image`` of
  ``S<k>-<name>.npz``; those files are read too (but cannot be memory-mapped);
- subjects S1, S5, S6, S7, S8 train (5% of their videos held out for validation
  with the official seed-42 split of the sorted file list), S9 and S11 test;
- subsampling happens when clips are read: a clip of ``seq_len`` frames spans
  ``(seq_len - 1) * subsampling + 1`` original frames and keeps one in
  ``subsampling`` = 8 (about 6 fps); training clips have 16 frames;
- test set (:func:`make_test_set`): 1,000 clips of 53 subsampled frames drawn as
  ``preprocessing/human/make_test_set.py`` does (legacy NumPy generator seeded
  with 42; per clip a video then a start). Each clip keeps its *intermediate*
  frames (53 subsampled = 417 original frames) so that models can be evaluated
  at a higher frame rate; it is saved as ``test_set_53_8/test_<i>.npz`` with
  ``image`` (417, 64, 64, 3), ``filename``, ``subject`` and ``frame`` (the start).

Memory: the official loader holds every training video in RAM, some two million
frames of 12 KiB (tens of GB). :class:`Human` memory-maps the ``.npy`` files by
default (``mmap=True``), reading only the frames of the clips drawn;
``mmap=False`` (or official ``.npz`` files) loads them all. :class:`HumanTestSet`
reads one 5 MB clip file per item (the full test set is 5.2 GB on disk).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import steps
from .common import InvalidTestSetError, output_folder, split_indices
from .steps import Step
from .video_io import (
    FixedVideos,
    LazyArrays,
    VideoClips,
    atomic_dir,
    crop_resize,
    decode_video,
    open_npy,
    read_npy_header,
    read_npz_header,
    save_npy,
    savez,
    sorted_files,
)

#: Subjects of each fold (official split).
SUBJECTS = {"train": (1, 5, 6, 7, 8), "test": (9, 11)}
#: Crop box (left, upper, right, lower) applied before resizing.
CROP_BOX = (100, 100, 900, 900)
SUBSAMPLING = 8


def span(seq_len: int, subsampling: int = SUBSAMPLING) -> int:
    """Original frames covered by a clip of ``seq_len`` subsampled frames."""
    return (seq_len - 1) * subsampling + 1


# ---------------------------------------------------------------- conversion
def subject_videos(data_dir: str | os.PathLike, subject: int) -> list[Path]:
    """Video files of ``S<subject>/Videos`` (sorted), without ``_``-prefixed ones."""
    folder = Path(data_dir).expanduser() / f"S{subject}" / "Videos"
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: extract the Human3.6M videos "
                                "of each subject into S<k>/Videos/")
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and not p.name.startswith(("_", ".")))


def convert_human(data_dir: str | os.PathLike,
                  out_dir: str | os.PathLike | None = None, image_size: int = 64,
                  folds=("train", "test"), crop=CROP_BOX, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Convert the videos of each fold into ``out_dir/<fold>/S<k>-<name>.npy``.

    Each fold folder appears only once all its videos are converted (an error
    leaves nothing of it behind). ``out_dir`` defaults to ``data_dir``.

    Returns
    -------
    dict
        Per fold: ``path``, ``videos`` and ``frames`` (original frame rate).
    """
    out = output_folder(data_dir, out_dir)
    jobs = {fold: [(s, p) for s in SUBJECTS[fold] for p in subject_videos(data_dir, s)]
            for fold in folds}
    transform = partial(crop_resize, box=tuple(crop), size=image_size)
    summary = {}
    for fold, videos in jobs.items():
        info = summary[fold] = {"path": out / fold, "videos": 0, "frames": 0}
        with atomic_dir(out / fold, overwrite) as tmp:
            for subject, path in tqdm(videos, desc=f"Human3.6M {fold}", unit="video",
                                      disable=not progress):
                frames = decode_video(path, transform=transform)  # (T, S, S, 3)
                save_npy(tmp / f"S{subject}-{path.stem}.npy", frames)
                info["videos"] += 1
                info["frames"] += len(frames)
    return summary


# ------------------------------------------------------------ processed data
def video_files(folder: str | os.PathLike) -> list[Path]:
    """Converted videos (``.npy``, or official ``.npz``) of a folder, by name."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: run python -m srvp data "
                                "human-convert first")
    files = sorted_files(folder, (".npy", ".npz"))
    if not files:
        raise FileNotFoundError(f"no converted Human3.6M video in {folder}")
    return files


def video_shape(path: Path) -> tuple[int, ...]:
    """Shape (T, H, W, 3) of a converted video, read from its header only."""
    if path.suffix == ".npy":
        shape, dtype = read_npy_header(path)
    else:
        shape, dtype = read_npz_header(path, "image")
    if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8:
        raise ValueError(f"{path}: expected a uint8 video (T, H, W, 3), got "
                         f"{dtype} {shape}")
    return shape


def load_video(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """A converted video, uint8 (T, H, W, 3); ``.npz`` files are always loaded."""
    path = Path(path)
    if path.suffix == ".npy":
        return open_npy(path, mmap)
    with np.load(path, allow_pickle=False) as data:
        return data["image"]


def _metadata(path: Path) -> dict:
    """``filename`` and ``subject`` of a converted video (from its name or file)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if {"filename", "subject"} <= set(data.files):
                return {"filename": data["filename"], "subject": data["subject"]}
    subject, _, name = path.stem.partition("-")
    return {"filename": np.array(name), "subject": np.array(int(subject.lstrip("S")))}


class Human(VideoClips):
    """Random Human3.6M clips, uint8 (n, T, 3, 64, 64), one frame in ``stride``.

    Build it with :meth:`from_dir`; draw with ``generate(n, rng)``.
    """

    @classmethod
    def from_dir(cls, data_dir: str | os.PathLike, fold: str = "train",
                 seq_len: int = 16, subsampling: int = SUBSAMPLING,
                 mmap: bool = True) -> "Human":
        """Clips of the videos of ``data_dir/train`` (the training subjects).

        ``fold`` is ``"train"`` (95% of the videos), ``"val"`` (5%, official
        seed-42 split of the sorted file list) or ``"all"``.
        """
        paths = video_files(Path(data_dir).expanduser() / "train")
        if fold != "all":
            paths = [paths[i] for i in split_indices(len(paths), fold)]
        lengths = [video_shape(p)[0] for p in paths]
        videos = LazyArrays(paths, partial(load_video, mmap=mmap), preload=not mmap)
        return cls(videos, lengths, seq_len, stride=subsampling)


# ------------------------------------------------------------------ test set
def testset_dirname(seq_len: int = 53, subsampling: int = SUBSAMPLING) -> str:
    """Folder name written by the official test-set script."""
    return f"test_set_{seq_len}_{subsampling}"


def make_test_set(data_dir: str | os.PathLike, size: int = 1000, seq_len: int = 53,
                  subsampling: int = SUBSAMPLING, seed: int = 42,
                  overwrite: bool = False, progress: bool = True) -> Path:
    """Draw and save the fixed test clips as the official script; return the folder.

    Videos are those of ``data_dir/test`` in sorted name order. Per clip, from one
    legacy generator seeded with ``seed``: video ``randint(n_videos)``, then start
    ``randint(T - span + 1)``; the clip keeps all ``span`` original frames. The
    folder ``data_dir/test_set_<seq_len>_<subsampling>`` appears only when complete.
    """
    data_dir = Path(data_dir).expanduser()
    files = video_files(data_dir / "test")
    lengths = [video_shape(p)[0] for p in files]
    needed = span(seq_len, subsampling)
    rng = np.random.RandomState(seed)
    target = data_dir / testset_dirname(seq_len, subsampling)
    with atomic_dir(target, overwrite) as tmp:
        for i in tqdm(range(size), desc="Human3.6M test set", unit="clip",
                      disable=not progress):
            k = rng.randint(len(files))
            if lengths[k] < needed:
                raise ValueError(f"{files[k]} has {lengths[k]} frames, fewer than the "
                                 f"{needed} of a test clip")
            start = rng.randint(lengths[k] - needed + 1)
            image = np.array(load_video(files[k])[start:start + needed])
            savez(tmp / f"test_{i}.npz", image=image, **_metadata(files[k]),
                  frame=np.array(start))
    return target


def _find_test_dir(path: Path, seq_len: int, subsampling: int, image_size: int) -> Path:
    """The folder of test clips: ``path`` itself or one of the official names."""
    if any(path.glob("test_*.npz")):
        return path
    for name in (f"test_set_{image_size}_{seq_len}_{subsampling}",
                 testset_dirname(seq_len, subsampling)):
        if (path / name).is_dir():
            return path / name
    raise FileNotFoundError(f"no Human3.6M test set in {path}: build it with "
                            "python -m srvp data human-testset")


class HumanTestSet(FixedVideos):
    """The fixed Human3.6M test clips, uint8 tensors (T, 3, 64, 64).

    Clips are listed in sorted file-name order (``test_0``, ``test_1``,
    ``test_10``, ...), as the official loader does. Item ``i`` keeps one frame in
    ``subsampling`` of the stored clip: ``subsampling=1`` serves every
    intermediate frame.

    Parameters
    ----------
    path : path-like
        The folder of ``test_<i>.npz`` files, or the data folder holding
        ``test_set_64_53_8`` (the official loader's name) or ``test_set_53_8``.
    seq_len : int, optional
        Frames served per clip (default: all that the stored clips allow).
    subsampling : int
        Keep one stored frame in ``subsampling``.
    test_len : int
        Subsampled clip length in the folder name looked for.
    """

    def __init__(self, path, seq_len: int | None = None,
                 subsampling: int = SUBSAMPLING, test_len: int = 53):
        self.path = _find_test_dir(Path(path).expanduser(), test_len, subsampling, 64)
        self.files = sorted_files(self.path, (".npz",))
        self.subsampling = int(subsampling)
        try:
            shapes = {video_shape(f) for f in self.files}
        except ValueError as err:
            raise InvalidTestSetError(str(err)) from err
        if len(shapes) != 1:
            raise InvalidTestSetError(f"{self.path}: test clips must share one shape "
                                      f"(T, H, W, 3), found {sorted(shapes)}")
        self.clip_shape = shapes.pop()
        self.max_len = (self.clip_shape[0] - 1) // self.subsampling + 1
        self.seq_len = self.max_len if seq_len is None else seq_len

    def __len__(self) -> int:
        return len(self.files)

    def _video(self, index: int, seq_len: int) -> np.ndarray:
        stop = span(seq_len, self.subsampling)
        return load_video(self.files[index])[:stop:self.subsampling]


# --------------------------------------------------- `python -m srvp data` steps
_CONVERT_DESC = """\
Convert the Human3.6M videos DATA/S<k>/Videos/*.mp4 (files starting with '_' are
skipped): each frame is cropped to the box (100, 100, 900, 900), then resized to
64x64 RGB with Lanczos; all frames are kept (subsampling happens when clips are
read). Writes OUT/train/S<k>-<name>.npy for S1, S5, S6, S7, S8 and
OUT/test/S<k>-<name>.npy for S9, S11, uint8 (T, 64, 64, 3). Needs PyAV and
Pillow. Each folder appears only when complete."""

_TESTSET_DESC = """\
Build the fixed Human3.6M test set as the official make_test_set.py: 1,000 clips
of 53 subsampled frames (one in 8) from the videos of DATA/test (sorted names),
drawn with NumPy's legacy generator seeded with 42 (per clip: video, start).
Each clip keeps its intermediate frames, (53 - 1) * 8 + 1 = 417 frames, in
DATA/test_set_53_8/test_<i>.npz ('image', 'filename', 'subject', 'frame').
The full set takes about 5.2 GB."""


def _report_convert(info: dict, args, seconds: float):
    yield f"Human3.6M converted in {seconds:.1f} s:"
    for fold, item in info.items():
        yield (f"  {fold:<5} {item['path']}: {item['videos']} videos, "
               f"{item['frames']} frames (all kept)")


def _report_testset(folder: Path, args, seconds: float):
    stored = span(args.seq_len, args.subsampling)
    return [f"Wrote {folder} in {seconds:.1f} s: {args.size} clips of "
            f"{args.seq_len} frames (one in {args.subsampling}; {stored} stored "
            f"with the intermediate frames), seed {args.seed}"]


#: The ``python -m srvp data`` sub-commands of Human3.6M (see :mod:`srvp.data.steps`).
STEPS = (
    Step("human-convert", "convert Human3.6M videos", _CONVERT_DESC,
         (*steps.CONVERT, steps.image_size("frame size in pixels after the crop, "
                                           "N x N (default 64)"),
          steps.option("--folds", nargs="+", choices=("train", "test"),
                       default=["train", "test"], help="folds to convert (default "
                                                       "both)"),
          steps.NO_PROGRESS),
         run=lambda a: convert_human(a.data_dir, a.out, a.image_size,
                                     folds=tuple(a.folds), overwrite=a.overwrite,
                                     progress=a.progress),
         report=_report_convert),
    Step("human-testset", "build the Human3.6M test set", _TESTSET_DESC,
         (steps.data_dir("dataset folder holding test/"), steps.clips(),
          steps.seq_len(53, "subsampled frames per clip"),
          steps.option("--subsampling", type=int, default=SUBSAMPLING, metavar="N",
                       help=f"keep one frame in N (default {SUBSAMPLING})"),
          steps.seed(),
          steps.option("--overwrite", action="store_true",
                       help="replace an existing test-set folder"),
          steps.NO_PROGRESS),
         run=lambda a: make_test_set(a.data_dir, a.size, a.seq_len, a.subsampling,
                                     a.seed, a.overwrite, progress=a.progress),
         report=_report_testset),
)
