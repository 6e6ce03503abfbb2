"""KTH human actions: download, conversion, official split, clips and test set.

See book ch. 1. The protocol of the official SRVP code (``data/kth.py``,
``preprocessing/kth/*``), itself taken from SVG (Denton & Fergus, 2018):

- 6 actions (:data:`CLASSES`), 25 persons, 4 scenarios ``d1``-``d4``; raw files
  ``raw/<action>/personXX_<action>_dY_uncomp.avi`` (160x120, 25 fps) from the KTH
  site (:func:`download_kth`);
- conversion (:func:`convert_kth`): every frame resized as a whole to 64x64 by
  FFmpeg's bicubic scaler, as RGB, keeping only the first channel (grayscale).
  The official script writes PNG frames with ``ffmpeg -r 25 -s 64x64``; here each
  video becomes one uint8 array (T, 64, 64) in
  ``processed_64/<action>/personXX_<action>_dY.npy`` (the official PNG folders
  ``processed_64/<action>/personXX_<action>_dY/image-NNN.png`` are read too);
- persons 1-20 train, 21-25 test. 5% of the training videos are held out for
  validation with the official seeded split (``RandomState(42)`` shuffle). The
  official code lists the videos in ``os.listdir`` order, which depends on the
  file system; here they are sorted by action (in :data:`CLASSES` order) then
  name, so the split is reproducible but may not pick the official 5%;
- training clips (:class:`KTH`): a random video with at least ``seq_len`` frames,
  a random start; 20 frames (10 conditioning + 10 predicted);
- test set (:func:`build_test_set`): 1,000 clips of 40 frames drawn exactly as
  ``preprocessing/kth/make_test_set.py`` (legacy NumPy generator seeded with 42;
  per clip: action, person in 21-25, scenario in 1-4, start frame), saved as
  ``svg_test_set_40.npz`` with ``sequences`` (N, T, 64, 64) uint8, ``persons``
  (N,) and ``actions`` (N,).

Memory: the converted videos take about 1.2 GB (some 300,000 frames of 4 KiB).
:class:`KTH` memory-maps the ``.npy`` files by default (``mmap=True``), so only
the clips drawn are read; ``mmap=False`` loads everything, like the official
loader. The test set is held in memory (1,000 x 40 x 64 x 64 bytes = 164 MB).
"""

from __future__ import annotations

import os
import re
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import download
from . import steps
from .common import InvalidTestSetError, output_folder, split_indices
from .steps import Step
from .video_io import (
    ArchiveError,
    FixedVideos,
    LazyArrays,
    VideoClips,
    atomic_dir,
    decode_video,
    open_npy,
    read_npy_header,
    require_pil,
    save_npy,
    savez,
)

#: The six actions, in the official order (it matters for the test-set draws).
CLASSES = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
TRAIN_PERSONS = tuple(range(1, 21))
TEST_PERSONS = tuple(range(21, 26))
#: Where the raw zips are fetched, tried in order (the first is SVG's URL).
URLS = ("http://www.nada.kth.se/cvap/actions/{action}.zip",
        "https://www.csc.kth.se/cvap/actions/{action}.zip")
#: Size cap of each action's zip (the largest, walking, is about 250 MB).
MAX_BYTES = 1 << 30
_NAME = re.compile(r"^person(\d\d)_([a-z]+)_d(\d+)")


def parse_name(name: str) -> tuple[int, str, int]:
    """(person, action, scenario) of a KTH file or video name.

    >>> parse_name("person07_boxing_d3_uncomp.avi")
    (7, 'boxing', 3)
    """
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} does not follow the KTH naming scheme "
                         "personXX_<action>_dY")
    return int(match[1]), match[2], int(match[3])


def testset_filename(seq_len: int = 40) -> str:
    """Official name of the test set of ``seq_len``-frame clips."""
    return f"svg_test_set_{seq_len}.npz"


# ------------------------------------------------------------------ download
def _extract_avis(zip_path: Path, folder: Path) -> int:
    """Check a zip and extract its ``.avi`` members (flattened) into ``folder``."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ArchiveError(f"{zip_path}: corrupt member {bad}")
            members = [m for m in archive.infolist() if m.filename.endswith(".avi")]
            for member in members:
                target = folder / Path(member.filename).name
                with archive.open(member) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise ArchiveError(f"{zip_path}: truncated or corrupt zip ({err}); it was "
                           "removed: download it again") from err
    if not members:
        raise ArchiveError(f"{zip_path}: no .avi file inside")
    return len(members)


def download_kth(out_dir: str | os.PathLike, classes=CLASSES, urls=URLS,
                 timeout: float | None = None, progress: bool = True,
                 deadline: float | None = None) -> list[Path]:
    """Download and extract the raw KTH videos into ``out_dir/raw/<action>/``.

    Each action's zip is fetched (the URLs of :data:`URLS` in turn) by
    :func:`srvp.download.fetch`: capped at :data:`MAX_BYTES`, refused if it is
    an HTML page or not a whole zip, renamed into ``raw/`` only then; it is
    extracted and deleted. Actions whose folder already exists are skipped; a
    zip already in ``raw/`` that turns out corrupt is removed. Needs internet:
    offline the first connection fails within ``timeout`` seconds with a
    :class:`~srvp.download.DownloadError`, and folders made for the download
    are removed again.

    Parameters
    ----------
    timeout, deadline : float, optional
        Seconds without a byte, and for each whole zip (defaults of
        :mod:`srvp.download`).

    Returns
    -------
    list of Path
        The folders of the actions.
    """
    raw = Path(out_dir).expanduser() / "raw"
    folders = []
    with download.own_folder(raw):
        for action in classes:
            folder = raw / action
            folders.append(folder)
            if folder.is_dir():
                continue
            zip_path = raw / f"{action}.zip"
            if not zip_path.is_file():
                _download_first(urls, zip_path, timeout, deadline, progress)
            try:
                with atomic_dir(folder) as tmp:
                    _extract_avis(zip_path, tmp)
            except ArchiveError:
                zip_path.unlink()  # kept, it would fail the same way next time
                raise
            zip_path.unlink()
    return folders


def _download_first(urls, target: Path, timeout, deadline, progress) -> None:
    """Try each URL template in turn; one error naming them all if all fail."""
    tried = []
    for template in urls:
        try:
            download.fetch(template.format(action=target.stem), target,
                           max_bytes=MAX_BYTES, timeout=timeout, deadline=deadline,
                           progress=progress)
            return
        except download.DownloadError as err:
            tried.append(f"{err.url} ({err.reason})")
    raise download.DownloadError(
        f"cannot download {target.name}: tried {'; '.join(tried) or 'no URL'}. "
        f"Offline? Fetch it by hand from the KTH site and put it at {target}")


# ---------------------------------------------------------------- conversion
def raw_videos(data_dir: str | os.PathLike,
               classes=CLASSES) -> list[tuple[str, Path]]:
    """(action, path) of every raw ``.avi`` in ``data_dir/raw/<action>/``, sorted,
    for the actions of ``classes`` (all six by default, each required)."""
    raw = Path(data_dir).expanduser() / "raw"
    if not raw.is_dir():
        raise FileNotFoundError(f"no folder {raw}: put the KTH .avi files in "
                                "raw/<action>/ (python -m srvp data kth-download)")
    videos = []
    for action in classes:
        folder = raw / action
        if not folder.is_dir():
            raise FileNotFoundError(f"no folder {folder} for the action {action!r}")
        videos += [(action, p) for p in sorted(folder.glob("*.avi"))]
    if not videos:
        raise FileNotFoundError(f"no .avi file under {raw}/<action>/")
    return videos


def video_name(avi_name: str) -> str:
    """Video name of a raw file: ``personXX_action_dY`` (``_uncomp.avi`` removed)."""
    for suffix in ("_uncomp.avi", ".avi"):
        if avi_name.endswith(suffix):
            return avi_name[: -len(suffix)]
    return avi_name


def convert_kth(data_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                image_size: int = 64, overwrite: bool = False,
                progress: bool = True, classes=CLASSES) -> dict:
    """Convert the raw KTH videos into ``out_dir/processed_<size>/`` (see module doc).

    ``classes``: the actions converted (all six by default, as training needs).

    The output folder appears only once every video is converted (an error
    leaves nothing behind). ``out_dir`` defaults to ``data_dir``.

    Returns
    -------
    dict
        ``path`` (the folder), ``videos`` and ``frames`` (counts), ``per_action``.
    """
    videos = raw_videos(data_dir, classes)
    out = output_folder(data_dir, out_dir)
    target = out / f"processed_{image_size}"
    summary = {"path": target, "videos": 0, "frames": 0,
               "per_action": dict.fromkeys(CLASSES, 0)}
    with atomic_dir(target, overwrite) as tmp:
        for action, path in tqdm(videos, desc="KTH videos", unit="video",
                                 disable=not progress):
            frames = decode_video(path, size=image_size)[..., 0]  # (T, S, S)
            save_npy(tmp / action / f"{video_name(path.name)}.npy", frames)
            summary["videos"] += 1
            summary["frames"] += len(frames)
            summary["per_action"][action] += 1
    return summary


# ------------------------------------------------------------ processed data
def load_video(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """A processed video, uint8 (T, H, W): a ``.npy`` file or a PNG-frame folder.

    PNG folders (the official layout) are read frame by frame in name order,
    keeping the first channel.
    """
    path = Path(path)
    if path.suffix == ".npy":
        return open_npy(path, mmap)
    image_cls = require_pil()
    names = sorted(p for p in path.iterdir() if p.suffix == ".png")
    frames = [np.asarray(image_cls.open(p)) for p in names]
    return np.stack([f if f.ndim == 2 else f[:, :, 0] for f in frames])


def video_length(path: Path) -> int:
    """Number of frames of a processed video, without reading them."""
    if path.suffix == ".npy":
        return read_npy_header(path)[0][0]
    return sum(1 for p in path.iterdir() if p.suffix == ".png")


def find_video(processed: Path, action: str, name: str) -> Path:
    """The ``.npy`` file (preferred) or PNG folder of a video; raise if absent."""
    for path in (processed / action / f"{name}.npy", processed / action / name):
        if path.exists():
            return path
    raise FileNotFoundError(f"KTH video {name} not found in {processed / action} "
                            "(convert the raw videos first: python -m srvp data "
                            "kth-convert)")


def list_videos(processed: str | os.PathLike, persons=TRAIN_PERSONS) -> list[Path]:
    """Processed videos of ``persons``, sorted by action then name."""
    processed = Path(processed)
    if not processed.is_dir():
        raise FileNotFoundError(f"no folder {processed}: run python -m srvp data "
                                "kth-convert first")
    keep, out = set(persons), []
    for action in CLASSES:
        folder = processed / action
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
        out += [p for p in entries if (p.suffix == ".npy" or p.is_dir())
                and _NAME.match(p.name) and parse_name(p.name)[0] in keep]
    return out


class KTH(VideoClips):
    """Random KTH training or validation clips, uint8 (n, T, 1, 64, 64).

    Build it with :meth:`from_dir`; draw with ``generate(n, rng)``.
    """

    @classmethod
    def from_dir(cls, data_dir: str | os.PathLike, fold: str = "train",
                 seq_len: int = 20, image_size: int = 64, mmap: bool = True) -> "KTH":
        """Clips of the videos of persons 1-20 in ``data_dir/processed_<size>``.

        ``fold`` is ``"train"`` (95%), ``"val"`` (5%, seed-42 split) or ``"all"``.
        ``mmap=False`` loads every video in memory (about 1.1 GB for the 20
        training persons).
        """
        paths = list_videos(Path(data_dir).expanduser() / f"processed_{image_size}")
        if not paths:
            raise FileNotFoundError(f"no processed KTH video of persons 1-20 in "
                                    f"{data_dir}")
        if fold != "all":
            paths = [paths[i] for i in split_indices(len(paths), fold)]
        videos = LazyArrays(paths, partial(load_video, mmap=mmap), preload=not mmap)
        return cls(videos, [video_length(p) for p in paths], seq_len)


# ------------------------------------------------------------------ test set
def build_test_set(data_dir: str | os.PathLike, size: int = 1000, seq_len: int = 40,
                   seed: int = 42, image_size: int = 64,
                   progress: bool = True) -> dict:
    """Draw the fixed test clips exactly as the official ``make_test_set.py``.

    Per clip, from one legacy generator seeded with ``seed``: action
    ``randint(6)``, person ``randint(21, 26)``, scenario ``randint(1, 5)``, start
    ``randint(T - seq_len + 1)`` where T is the video's frame count.

    Returns
    -------
    dict of np.ndarray
        ``sequences`` (N, seq_len, H, W) uint8, ``persons`` (N,) int64 and
        ``actions`` (N,) str.
    """
    processed = Path(data_dir).expanduser() / f"processed_{image_size}"
    if not processed.is_dir():
        raise FileNotFoundError(f"no folder {processed}: convert the raw videos "
                                "first (python -m srvp data kth-convert)")
    rng = np.random.RandomState(seed)
    sequences = np.empty((size, seq_len, image_size, image_size), dtype=np.uint8)
    persons, actions = [], []
    for i in tqdm(range(size), desc="KTH test set", unit="clip", disable=not progress):
        action = CLASSES[rng.randint(len(CLASSES))]
        person, trial = rng.randint(21, 26), rng.randint(1, 5)
        name = f"person{person:02d}_{action}_d{trial}"
        video = load_video(find_video(processed, action, name))
        if len(video) < seq_len:
            raise ValueError(f"KTH video {name} has {len(video)} frames, fewer than "
                             f"the {seq_len} of a test clip")
        start = rng.randint(len(video) - seq_len + 1)
        sequences[i] = video[start:start + seq_len]
        persons.append(person)
        actions.append(action)
    return {"sequences": sequences, "persons": np.array(persons, dtype=np.int64),
            "actions": np.array(actions)}


def test_person_clips(data_dir: str | os.PathLike, n: int, seq_len: int = 40,
                      seed: int = 0, image_size: int = 64) -> np.ndarray:
    """``n`` clips of ``seq_len`` frames from the videos of the test persons
    (21-25) that ``data_dir/processed_<size>`` holds, whatever actions it holds.

    For figures made from a few downloaded actions (book ch. 6, gpu profile);
    scores use the official test set of :func:`build_test_set`. Each clip is a
    video drawn with a seeded generator and its first ``seq_len`` frames.

    Returns
    -------
    np.ndarray (n, seq_len, H, W) uint8.
    """
    paths = [p for p in list_videos(Path(data_dir).expanduser()
                                    / f"processed_{image_size}", TEST_PERSONS)
             if video_length(p) >= seq_len]
    if not paths:
        raise FileNotFoundError(f"no processed KTH video of persons 21-25 with "
                                f"{seq_len} frames or more in {data_dir}")
    rng = np.random.RandomState(seed)
    picks = rng.choice(len(paths), size=n, replace=n > len(paths))
    return np.stack([load_video(paths[i])[:seq_len] for i in picks])


def make_test_set(data_dir: str | os.PathLike, out_dir=None, **kwargs) -> Path:
    """Build the test set and save it as ``svg_test_set_<T>.npz``; return the path.

    Written atomically into ``out_dir`` (default ``data_dir``). Keyword arguments
    go to :func:`build_test_set`.
    """
    arrays = build_test_set(data_dir, **kwargs)
    out = output_folder(data_dir, out_dir)
    target = out / testset_filename(arrays["sequences"].shape[1])
    return savez(target, compressed=True, **arrays)


def load_test_set(path: str | os.PathLike) -> dict:
    """Load and check a KTH test-set ``.npz`` (all arrays, in memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no KTH test set at {path}; build it with "
                                "python -m srvp data kth-testset")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InvalidTestSetError(f"{path}: not a readable .npz file ({err})") from err
    seq = arrays.get("sequences")
    if seq is None or seq.ndim != 4 or seq.dtype != np.uint8 or \
            seq.shape[2] != seq.shape[3]:
        raise InvalidTestSetError(
            f"{path}: 'sequences' must be uint8 (N, T, H, W) with H == W, got "
            f"{None if seq is None else (seq.dtype, seq.shape)}")
    for name in ("persons", "actions"):
        if name in arrays and arrays[name].shape != seq.shape[:1]:
            raise InvalidTestSetError(f"{path}: '{name}' has shape "
                                      f"{arrays[name].shape}, expected {seq.shape[:1]}")
    return arrays


class KTHTestSet(FixedVideos):
    """The fixed KTH test clips, uint8 tensors (T, 1, 64, 64).

    Parameters
    ----------
    path : path-like
        The ``.npz`` file, or the folder holding ``svg_test_set_<test_len>.npz``.
    seq_len : int, optional
        Serve only the first ``seq_len`` frames (all by default).
    test_len : int
        Clip length in the file name looked for when ``path`` is a folder.
    """

    def __init__(self, path, seq_len: int | None = None, test_len: int = 40):
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / testset_filename(test_len)
        arrays = load_test_set(path)
        self.path, self.sequences = path, arrays["sequences"]
        self.persons, self.actions = arrays.get("persons"), arrays.get("actions")
        self.max_len = self.sequences.shape[1]
        self.seq_len = self.max_len if seq_len is None else seq_len

    def __len__(self) -> int:
        return len(self.sequences)

    def _video(self, index: int, seq_len: int) -> np.ndarray:
        return self.sequences[index, :seq_len]


# --------------------------------------------------- `python -m srvp data` steps
_DOWNLOAD_DESC = """\
Download the six KTH action zips (boxing, handclapping, handwaving, jogging,
running, walking; about 1 GB) from the KTH site, check and extract them into
OUT/raw/<action>/personXX_<action>_dY_uncomp.avi, then delete the zips. Actions
already extracted are skipped. A zip enters OUT/raw only once whole (no HTML
page, no truncated archive); a failed download leaves no partial file and no
folder it made. Needs internet: offline it fails at once."""

_CONVERT_DESC = """\
Convert the raw KTH videos (DATA/raw/<action>/*.avi) into 64x64 grayscale uint8
arrays, as the official preprocessing (the whole frame resized by FFmpeg's
bicubic scaler, first RGB channel kept): OUT/processed_64/<action>/
personXX_<action>_dY.npy, shape (T, 64, 64). Needs PyAV (pip install av). The
folder appears only when every video is converted."""

_TESTSET_DESC = """\
Build the fixed KTH test set exactly as the official make_test_set.py: 1,000
clips of 40 frames from persons 21-25, drawn with NumPy's legacy generator
seeded with 42 (per clip: action, person, scenario d1-d4, start frame). Reads
DATA/processed_64 and writes DATA/svg_test_set_40.npz with 'sequences'
(N, T, 64, 64) uint8, 'persons' (N,) and 'actions' (N,)."""


def _report_download(folders: list[Path], args, seconds: float):
    return [f"{folder}: {len(list(folder.glob('*.avi')))} videos"
            for folder in folders]


def _report_convert(info: dict, args, seconds: float):
    size = args.image_size
    yield (f"Wrote {info['path']} in {seconds:.1f} s: {info['videos']} videos, "
           f"{info['frames']} frames of {size}x{size} uint8")
    for action, count in info["per_action"].items():
        yield f"  {action:<13} {count} videos"


def _run_testset(args) -> tuple[Path, dict]:
    path = make_test_set(args.data_dir, size=args.size, seq_len=args.seq_len,
                         seed=args.seed, image_size=args.image_size,
                         progress=args.progress)
    return path, load_test_set(path)


def _report_testset(result: tuple[Path, dict], args, seconds: float):
    path, arrays = result
    yield (f"Wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in "
           f"{seconds:.1f} s: KTH test set, seed {args.seed}")
    for name, a in arrays.items():
        yield f"  {name:<9} {a.dtype!s:<5} {tuple(a.shape)}"


#: The ``python -m srvp data`` sub-commands of KTH (see :mod:`srvp.data.steps`).
STEPS = (
    Step("kth-download", "download the raw KTH videos", _DOWNLOAD_DESC,
         (steps.out_dir("dataset folder", required=True), steps.NO_PROGRESS),
         run=lambda a: download_kth(a.out, progress=a.progress, timeout=a.timeout,
                                    deadline=a.deadline),
         report=_report_download),
    Step("kth-convert", "convert KTH .avi files to arrays", _CONVERT_DESC,
         (*steps.CONVERT, steps.image_size("frame size in pixels, N x N (default "
                                           "64): writes OUT/processed_N/"),
          steps.NO_PROGRESS),
         run=lambda a: convert_kth(a.data_dir, a.out, a.image_size, a.overwrite,
                                   progress=a.progress),
         report=_report_convert),
    Step("kth-testset", "build the official KTH test set", _TESTSET_DESC,
         (steps.data_dir("dataset folder holding processed_64/"), steps.clips(),
          steps.seq_len(40), steps.seed(),
          steps.image_size("frame size of the converted videos read from "
                           "DATA/processed_N/ (default 64)"),
          steps.NO_PROGRESS),
         run=_run_testset, report=_report_testset),
)
