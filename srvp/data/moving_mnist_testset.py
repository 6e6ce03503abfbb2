"""The fixed Moving MNIST test sets of the paper: exact builder and loader (book ch. 1).

Published SRVP numbers are only comparable on the same test videos, so
:func:`build_test_set` reproduces the official ``preprocessing/mmnist/make_test_set.py``
array for array:

- NumPy's legacy global generator is seeded with 42 (here a ``RandomState(42)``
  consumed in the same order), the 10,000 MNIST *test* digits are shuffled with
  one ``permutation`` and paired consecutively: video ``i`` shows digits
  ``perm[2 i]`` and ``perm[2 i + 1]``, so there are 5,000 videos;
- for each video and each of its digits in turn, a trajectory is drawn with the
  official per-digit procedure (start row, start column, row and column velocity,
  then two fresh velocity components at every stochastic bounce);
- the file ``smmnist_test_2digits_64.npz`` (stochastic) or
  ``mmnist_test_2digits_64.npz`` (deterministic) holds ``sequences`` (T, N, 64, 64)
  uint8, ``latents`` (T, N, 2, 4) int64 (rounded row, column and the two velocity
  components per frame), ``labels`` (N, 2) uint8 and ``digits`` (N, 2, 28, 28)
  uint8.

Clip lengths: 25 frames for Stochastic Moving MNIST (5 conditioning + 20
predicted) and 100 for the deterministic version (5 + 95). The official README
snapshots we read give ``--seq_len 100`` for the stochastic set and ``--seq_len 25``
(without ``--deterministic``) for the deterministic one; the authors acknowledged
in srvp issue #9 that these Moving MNIST instructions were wrong and that
stochastic testing uses 25 frames in total, while deterministic testing uses
``--nt_gen 100``. Other lengths can be requested with ``seq_len``; note that the
random stream depends on the length, so a 100-frame stochastic set cut to 25
frames is a *different* test set.

The trajectories are simulated one digit at a time (their random draws are
interleaved, so they cannot be vectorised without changing the set); only the
drawing is vectorised. A full set takes a few seconds.

:func:`digits_overlap` reads the ``latents`` of a set and marks the frames where
two digits cross (book ch. 9).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import MAX_FRAMES
from ..fileio import atomic_file
from . import steps
from .common import InvalidTestSetError
from .mnist_idx import ENV_VAR, command_line_hint, load_mnist
from .moving_mnist import bounce_one, render
from .steps import Step

#: Default clip length of each test set, keyed by ``deterministic``.
DEFAULT_SEQ_LEN = {False: 25, True: 100}
ARRAY_NAMES = ("sequences", "latents", "labels", "digits")


#: SHA-256 of the raw bytes of each array written by the official script (run on
#: the MNIST test files, seed 42), keyed by (deterministic, seq_len).
OFFICIAL_SHA256 = {
    (False, 25): {
        "sequences": "8783c4a2df402a3ab7e01f9f8bd633131562dfe93a33f02d88d64e1481e2bf00",
        "latents": "d578fb7d35be0cf6be4b596b26e0df86a58552b8d66d8b27d46b24fffe91804a",
        "labels": "7e387e07d121771f53e67d5d38994eca7c4f1692cf4124f8edd55ea088e81daf",
        "digits": "b4e23e71b2fbcf4e9ecfef6857e15fd7d8b4d3e80f021d285256d4a889ff8a73",
    },
    (True, 100): {
        "sequences": "ca3b0a61364894a9b832c4094ce969e59550df5596ba90662e16ba9ed405f132",
        "latents": "64853adcf398b3d898ed7ede80eab67392dc2b318ac3e6ed06d188bd0037cfa0",
        "labels": "7e387e07d121771f53e67d5d38994eca7c4f1692cf4124f8edd55ea088e81daf",
        "digits": "b4e23e71b2fbcf4e9ecfef6857e15fd7d8b4d3e80f021d285256d4a889ff8a73",
    },
}


def official_filename(deterministic: bool = False, num_digits: int = 2,
                      frame_size: int = 64) -> str:
    """Official file name, e.g. ``smmnist_test_2digits_64.npz`` (stochastic)."""
    prefix = "" if deterministic else "s"
    return f"{prefix}mmnist_test_{num_digits}digits_{frame_size}.npz"


def official_trajectory(rng: np.random.RandomState, seq_len: int, max_speed: int = 4,
                        deterministic: bool = False, limits=(36, 36),
                        init=None) -> np.ndarray:
    """One trajectory, consuming ``rng`` exactly as the official generator does.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Legacy generator (the official code uses the global one).
    seq_len : int
        Number of frames T.
    max_speed : int
        Velocity components are integers in [-max_speed, max_speed].
    deterministic : bool
        Reflect on bounces instead of re-drawing the velocity.
    limits : (int, int)
        Largest allowed top-left row and column.
    init : tuple of 4 int, optional
        Initial (row, column, row velocity, column velocity); drawn if None.

    Returns
    -------
    np.ndarray
        (T, 4) int64: rounded row, rounded column, row and column velocity.
    """
    x_max, y_max = limits
    if init is None:
        sx, sy = rng.randint(0, x_max + 1), rng.randint(0, y_max + 1)
        dx = rng.randint(-max_speed, max_speed + 1)
        dy = rng.randint(-max_speed, max_speed + 1)
    else:
        sx, sy, dx, dy = (int(v) for v in init)

    def draw():
        return rng.randint(-max_speed, max_speed + 1)

    out = np.empty((seq_len, 4), dtype=np.int64)
    for t in range(seq_len):
        sx, sy, dx, dy = bounce_one(sx, sy, dx, dy, draw, limits, deterministic)
        out[t] = round(sx), round(sy), dx, dy
        sx, sy = sx + dx, sy + dy
    return out


def build_test_set(images: np.ndarray, labels: np.ndarray, seq_len: int | None = None,
                   deterministic: bool = False, seed: int = 42, num_digits: int = 2,
                   frame_size: int = 64, max_speed: int = 4,
                   num_videos: int | None = None, progress: bool = True,
                   chunk: int = 250) -> dict[str, np.ndarray]:
    """Build the official Moving MNIST test set in memory.

    Parameters
    ----------
    images, labels : np.ndarray
        MNIST test digits (N, 28, 28) uint8 and their labels (N,).
    seq_len : int, optional
        Frames per video; 25 (stochastic) or 100 (deterministic) by default.
    deterministic : bool
        Build the deterministic test set.
    seed, num_digits, frame_size, max_speed : int
        Official parameters (42, 2, 64, 4).
    num_videos : int, optional
        Build only the first ``num_videos`` videos (an exact prefix of the full set).
    progress : bool
        Show a progress bar.
    chunk : int
        Videos drawn at once (memory/speed trade-off only).

    Returns
    -------
    dict of np.ndarray
        ``sequences`` (T, N, H, W) uint8, ``latents`` (T, N, D, 4) int64,
        ``labels`` (N, D) uint8, ``digits`` (N, D, 28, 28) uint8.
    """
    seq_len = DEFAULT_SEQ_LEN[bool(deterministic)] if seq_len is None else seq_len
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(images))
    total = len(images) // num_digits
    n = total if num_videos is None else min(int(num_videos), total)
    pick = order[: n * num_digits].reshape(n, num_digits)
    digits = np.ascontiguousarray(images[pick], dtype=np.uint8)
    limits = (frame_size - images.shape[1], frame_size - images.shape[2])
    sequences = np.empty((seq_len, n, frame_size, frame_size), dtype=np.uint8)
    latents = np.empty((n, seq_len, num_digits, 4), dtype=np.int64)
    bar = tqdm(total=n, desc="Moving MNIST test set", unit="video",
               disable=not progress)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        for i in range(start, stop):
            for d in range(num_digits):
                latents[i, :, d] = official_trajectory(rng, seq_len, max_speed,
                                                       deterministic, limits)
        videos = render(digits[start:stop], latents[start:stop], frame_size)
        sequences[:, start:stop] = videos.transpose(1, 0, 2, 3)
        bar.update(stop - start)
    bar.close()
    return {"sequences": sequences,
            "latents": np.ascontiguousarray(latents.transpose(1, 0, 2, 3)),
            "labels": np.asarray(labels)[pick].astype(np.uint8), "digits": digits}


def digits_overlap(latents: np.ndarray, digit_size: int = 28) -> np.ndarray:
    """Frames where the boxes of at least two digits intersect (book ch. 9).

    Two ``digit_size`` x ``digit_size`` boxes with top-left corners (r1, c1) and
    (r2, c2) share a pixel when |r1 - r2| < digit_size and |c1 - c2| <
    digit_size; boxes that only touch along an edge do not overlap. An MNIST
    digit has a black margin of about 4 pixels inside its 28 x 28 box, so
    ``digit_size=20`` tests the central 20 x 20 boxes instead, which are closer
    to where the ink is.

    Parameters
    ----------
    latents : np.ndarray
        (T, N, D, 4) integers, as returned by :func:`build_test_set`: row and
        column of each digit's top-left corner, then its velocity (any leading
        dimensions work: (..., D, 4)).
    digit_size : int
        Height and width of a digit's box.

    Returns
    -------
    np.ndarray
        (T, N) bool, True where at least two of the D digits overlap.
    """
    latents = np.asarray(latents)
    if latents.ndim < 2 or latents.shape[-1] != 4:
        raise ValueError(f"latents must be (..., D, 4), got {latents.shape}")
    corners = latents[..., :2].astype(np.int64)  # (..., D, 2): row, column
    gap = np.abs(corners[..., :, None, :] - corners[..., None, :, :])  # (..., D, D, 2)
    close = (gap < digit_size).all(-1)  # (..., D, D)
    n_digits = latents.shape[-2]
    pairs = np.triu(np.ones((n_digits, n_digits), dtype=bool), k=1)  # i < j
    return (close & pairs).any(axis=(-2, -1))


def save_test_set(arrays: dict[str, np.ndarray], out_dir: str | os.PathLike,
                  deterministic: bool = False) -> Path:
    """Write ``arrays`` to ``out_dir/<official name>`` (compressed, atomic).

    The file is written under a temporary name in ``out_dir`` and renamed.
    """
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    num_digits, frame_size = arrays["digits"].shape[1], arrays["sequences"].shape[-1]
    target = out_dir / official_filename(deterministic, num_digits, frame_size)
    with atomic_file(target) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{k: arrays[k] for k in ARRAY_NAMES})
    return target


def make_test_set(mnist_dir=None, out_dir=".", deterministic: bool = False,
                  seq_len: int | None = None, download: bool = False,
                  **kwargs) -> Path:
    """Load the MNIST test digits, build the test set and save it; return its path.

    Keyword arguments go to :func:`build_test_set`.
    """
    images, labels = load_mnist(mnist_dir, split="test", download=download)
    arrays = build_test_set(images, labels, seq_len, deterministic, **kwargs)
    return save_test_set(arrays, out_dir, deterministic)


def fingerprint(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 of the raw (C-order) bytes of each test-set array."""
    return {k: hashlib.sha256(np.ascontiguousarray(arrays[k]).data).hexdigest()
            for k in ARRAY_NAMES}


def matches_official(arrays: dict[str, np.ndarray], deterministic: bool) -> bool | None:
    """Whether ``arrays`` equal the official test set (None if no reference).

    References exist for the full 5,000-video sets of the default lengths.
    """
    reference = OFFICIAL_SHA256.get((bool(deterministic), arrays["sequences"].shape[0]))
    if reference is None or arrays["sequences"].shape[1:] != (5000, 64, 64):
        return None
    return fingerprint(arrays) == reference


def _check_arrays(arrays, path) -> None:
    """Raise :class:`InvalidTestSetError` unless the arrays have consistent shapes."""
    seq = arrays.get("sequences")
    if seq is None or seq.ndim != 4 or seq.shape[2] != seq.shape[3]:
        raise InvalidTestSetError(
            f"{path}: 'sequences' must be a (T, N, H, W) array with H == W, got "
            f"{None if seq is None else seq.shape}")
    if seq.dtype != np.uint8:
        raise InvalidTestSetError(f"{path}: 'sequences' must be uint8, got {seq.dtype}")
    t_len, n = seq.shape[:2]
    expected = {"latents": (t_len, n, None, 4), "labels": (n, None),
                "digits": (n, None, None, None)}
    for name, shape in expected.items():
        if name not in arrays:
            continue
        got = arrays[name].shape
        fits = len(got) == len(shape)
        if not fits or any(e not in (None, g) for e, g in zip(shape, got)):
            raise InvalidTestSetError(f"{path}: '{name}' has shape {got}, expected "
                                     f"{shape} (None = any) for sequences {seq.shape}")


def load_test_set(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load and validate a test-set ``.npz`` (all arrays, in memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No Moving MNIST test set at {path}; build it with "
                                "`python -m srvp data mmnist-testset`.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InvalidTestSetError(f"{path}: not a readable .npz file ({err})") from err
    _check_arrays(arrays, path)
    return arrays


class MovingMNISTTestSet(torch.utils.data.Dataset):
    """The fixed test videos, as uint8 tensors (T, 1, H, W).

    Parameters
    ----------
    path : path-like
        The ``.npz`` file, or a folder holding the official file name.
    deterministic : bool
        Which official name to look for when ``path`` is a folder.
    seq_len : int, optional
        Serve only the first ``seq_len`` frames (all by default), e.g. 25 for
        SM-MNIST evaluation.
    """

    def __init__(self, path, deterministic: bool = False, seq_len: int | None = None):
        path = Path(path)
        if path.is_dir():
            path = path / official_filename(deterministic)
        arrays = load_test_set(path)
        self.path = path
        self.sequences = arrays["sequences"]
        self.latents, self.labels = arrays.get("latents"), arrays.get("labels")
        self.seq_len = self.sequences.shape[0] if seq_len is None else seq_len

    @property
    def seq_len(self) -> int:
        """Number of frames served per video."""
        return self._seq_len

    @seq_len.setter
    def seq_len(self, value: int) -> None:
        if not 1 <= int(value) <= self.sequences.shape[0]:
            raise ValueError(f"seq_len must be in [1, {self.sequences.shape[0]}] for "
                             f"{self.path}, got {value}")
        self._seq_len = int(value)

    def change_seq_len(self, seq_len: int) -> None:
        """Change the number of frames served."""
        self.seq_len = seq_len

    def __len__(self) -> int:
        return self.sequences.shape[1]

    def __getitem__(self, index: int) -> torch.Tensor:
        """Video ``index`` as a uint8 tensor (T, 1, H, W)."""
        video = np.ascontiguousarray(self.sequences[: self.seq_len, index])
        return torch.from_numpy(video).unsqueeze(1)


# --------------------------------------------------- `python -m srvp data` steps
_TESTSET_DESC = """\
Build the fixed Moving MNIST test set exactly as the official SRVP script
(preprocessing/mmnist/make_test_set.py) does: the 10,000 MNIST test digits are
shuffled with seed 42 and paired into 5,000 videos, whose trajectories follow the
official generator. The output is OUT/smmnist_test_2digits_64.npz (stochastic) or
OUT/mmnist_test_2digits_64.npz (--deterministic), with the arrays 'sequences'
(T, N, 64, 64) uint8, 'latents' (T, N, 2, 4), 'labels' (N, 2) and 'digits'
(N, 2, 28, 28). Default lengths: 25 frames (stochastic), 100 (deterministic)."""


def _frames(text: str) -> int:
    """``--seq-len``: an integer of at most :data:`MAX_FRAMES` (a count below
    1 is refused with the other counts)."""
    value = int(text)
    if value > MAX_FRAMES:
        raise argparse.ArgumentTypeError(f"{value}: at most {MAX_FRAMES} frames")
    return value


def _run_testset(args) -> tuple[Path, dict[str, np.ndarray]]:
    images, labels = load_mnist(args.data_dir, split="test", download=args.download)
    arrays = build_test_set(images, labels, args.seq_len, args.deterministic,
                            num_videos=args.num_videos, progress=args.progress)
    return save_test_set(arrays, args.out, args.deterministic), arrays


def _report_testset(result: tuple[Path, dict], args, seconds: float):
    path, arrays = result
    kind = "deterministic" if args.deterministic else "stochastic"
    t_len, n = arrays["sequences"].shape[:2]
    yield (f"Wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in "
           f"{seconds:.1f} s: {kind} Moving MNIST, {n} videos of {t_len} frames, "
           "seed 42")
    for name in ARRAY_NAMES:
        yield f"  {name:<9} {arrays[name].dtype!s:<5} {tuple(arrays[name].shape)}"
    verdict = matches_official(arrays, args.deterministic)
    if verdict is not None:
        yield "  identical to the official test set: " + ("yes" if verdict else "NO")


#: The ``mmnist-testset`` sub-command (see :mod:`srvp.data.steps`).
STEPS = (
    Step("mmnist-testset", "build the official Moving MNIST test set (.npz)",
         _TESTSET_DESC,
         (steps.option("--data-dir", metavar="DIR", default=None,
                       help="folder holding t10k-images-idx3-ubyte[.gz] and "
                            f"t10k-labels-idx1-ubyte[.gz] (default: ${ENV_VAR})"),
          steps.out_dir("folder where the .npz file is written (created if "
                        "needed)", required=True),
          steps.option("--deterministic", action="store_true",
                       help="build the deterministic Moving MNIST test set instead"),
          steps.option("--seq-len", metavar="N", type=_frames, default=None,
                       positive=True, help="frames per video, at most "
                       f"{MAX_FRAMES} (default: 25 stochastic, 100 "
                       "deterministic)"),
          steps.option("--num-videos", metavar="N", type=int, default=None,
                       positive=True, help="build only the first N videos, an exact "
                       "prefix of the full set (for quick checks; default: all "
                       "5,000)"),
          steps.option("--download", action="store_true",
                       help="download the MNIST test files into --data-dir if "
                            "missing"),
          steps.option("--no-progress", action="store_true",
                       help="hide the progress bar")),
         run=_run_testset, report=_report_testset, hint=command_line_hint),
)
