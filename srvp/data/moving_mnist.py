"""Stochastic (and deterministic) Moving MNIST, generated on the fly (book ch. 1).

Each video shows ``num_digits`` = 2 MNIST digits (28x28, not resized) moving on a
64x64 black canvas. The semantics are those of the official SRVP generator:

- a digit's top-left corner starts at an integer position, uniform in
  ``[0, 64 - 28] = [0, 36]`` on each axis, with an integer velocity whose two
  components are uniform in ``[-max_speed, max_speed]`` (``max_speed`` = 4);
- positions are kept exactly (as floats) and only rounded (half to even) to draw;
  the first frame shows the initial position;
- when a step leaves the allowed box, the exact point where the segment crosses
  the wall is found; the stochastic version then draws a brand-new velocity whose
  component normal to that wall is forced to point back inside, the deterministic
  version only flips the sign of that component; the digit travels the rest of the
  step from the crossing point, and this repeats until it is inside;
- digits are added pixel-wise and the sum is clipped at 255 (uint8 frames).

Unlike the official code (one sequence at a time in Python), this module
simulates many trajectories at once with NumPy and pastes the digits through a
strided window view: several times faster, same distribution. Frames are uint8;
:func:`collate_fn` makes float batches (T, B, C, H, W) in [0, 1]. Validation uses
the official seed-42 5% split of the training digits (``common.split_indices``).

Seeding. Each :class:`MovingMNIST` owns a ``numpy.random.Generator``, created
lazily by the process that first draws. In a ``DataLoader`` worker it is seeded
from ``torch.initial_seed()`` = ``base_seed + worker_id`` (``base_seed`` comes from
the main process' torch RNG), so workers never share a stream and
``torch.manual_seed`` makes runs reproducible; no ``worker_init_fn`` is needed.
Outside workers, the ``seed`` argument (else ``torch.initial_seed()``) is used.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided

from .common import split_indices
from .mnist_idx import load_mnist

#: Tolerance of the wall tests, as in the official generator.
EPS = 1e-8


def _walls(sx, sy, x_max, y_max):
    """Which walls each position is beyond: (left, right, upper, bottom).

    As in the official code, ``sx`` is the first image axis (row) and ``sy`` the
    second (column); "left/right" bound ``sx`` and "upper/bottom" bound ``sy``.
    """
    return sx < -EPS, sx > x_max + EPS, sy < -EPS, sy > y_max + EPS


def _hit_point(sx, sy, dx, dy, walls, point, x_max, y_max):
    """Where the move ending at (sx, sy) with velocity (dx, dy) met a wall (scalar).

    Official rule: for an axis-aligned move the crossing is on the wall being
    passed; otherwise each flagged wall is intersected with the line of motion and
    its flag is kept only if the intersection lies on that wall's extent, the last
    kept wall (order left, right, upper, bottom) giving the point. Returns the
    updated flags and the point (``point`` is kept if no wall qualifies).
    """
    left, right, upper, bottom = walls
    if dx == 0:
        return walls, (sx, 0 if upper else y_max)
    if dy == 0:
        return walls, (0 if left else x_max, sy)
    a = dy / dx
    b = sy - a * sx
    flags = [left, right, upper, bottom]
    for k, lim in ((0, 0), (1, x_max)):
        if flags[k]:
            y_hit = a * lim + b
            flags[k] = -EPS <= y_hit <= y_max + EPS
            point = (lim, y_hit) if flags[k] else point
    for k, lim in ((2, 0), (3, y_max)):
        if flags[k]:
            x_hit = (lim - b) / a
            flags[k] = -EPS <= x_hit <= x_max + EPS
            point = (x_hit, lim) if flags[k] else point
    return tuple(flags), point


def bounce_one(sx, sy, dx, dy, draw, limits, deterministic=False, point=None):
    """Resolve the wall crossings of one step of one digit (the official rule).

    Parameters
    ----------
    sx, sy : float
        Position (row, column) after the step, possibly outside the box.
    dx, dy : int
        Velocity of the step.
    draw : callable
        ``draw()`` returns a new velocity component (stochastic bounces); called
        twice per bounce, row component first.
    limits : (int, int)
        Largest allowed row and column.
    deterministic : bool
        Reflect the normal component instead of re-drawing the velocity.
    point : (float, float), optional
        Crossing point carried over from an earlier bounce of the same step.

    Returns
    -------
    tuple
        (sx, sy, dx, dy) inside the box.
    """
    x_max, y_max = limits
    walls = _walls(sx, sy, x_max, y_max)
    while any(walls):
        walls, point = _hit_point(sx, sy, dx, dy, walls, point, x_max, y_max)
        cx, cy = point
        p = (sx - cx) / dx if dx != 0 else (sy - cy) / dy  # fraction of step left
        if not deterministic:
            dx, dy = draw(), draw()
        left, right, upper, bottom = walls
        dx = -abs(dx) if right else (abs(dx) if left else dx)
        dy = -abs(dy) if bottom else (abs(dy) if upper else dy)
        sx, sy = cx + dx * p, cy + dy * p
        walls = _walls(sx, sy, x_max, y_max)
    return sx, sy, dx, dy


def _crossing(sx, sy, dx, dy, walls, x_max, y_max):
    """Vectorised :func:`_hit_point` for arrays of moves (flags updated in place)."""
    left, right, upper, bottom = walls
    vert = dx == 0
    horiz = ~vert & (dy == 0)
    slant = ~(vert | horiz)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = dy / dx
        b = sy - a * sx
        y_left, y_right = a * 0 + b, a * x_max + b
        x_up, x_down = (0 - b) / a, (y_max - b) / a
    left &= ~slant | ((y_left >= -EPS) & (y_left <= y_max + EPS))
    right &= ~slant | ((y_right >= -EPS) & (y_right <= y_max + EPS))
    upper &= ~slant | ((x_up >= -EPS) & (x_up <= x_max + EPS))
    bottom &= ~slant | ((x_down >= -EPS) & (x_down <= x_max + EPS))
    cx = np.where(vert, sx, np.where(horiz & left, 0.0, np.where(horiz, x_max, np.nan)))
    cy = np.where(vert & upper, 0.0, np.where(vert, y_max, np.where(horiz, sy, np.nan)))
    for hit, x_hit, y_hit in ((left, 0.0, y_left), (right, x_max, y_right),
                              (upper, x_up, 0.0), (bottom, x_down, y_max)):
        hit = slant & hit  # the last wall kept gives the point
        cx, cy = np.where(hit, x_hit, cx), np.where(hit, y_hit, cy)
    return cx, cy


def _new_velocities(rngs, per, idx, max_speed):
    """Velocities (2, len(idx)) of the bouncing digits ``idx`` (sorted): digit i
    draws from ``rngs[i // per]``, one call per generator, as if alone."""
    if len(rngs) == 1:
        return rngs[0].integers(-max_speed, max_speed + 1, size=(2, idx.size))
    bounds = np.searchsorted(idx // per, np.arange(len(rngs) + 1))
    return np.concatenate(
        [rngs[g].integers(-max_speed, max_speed + 1, size=(2, hi - lo))
         for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])) if hi > lo],
        axis=1)


def _bounce(state, rngs, per, max_speed, deterministic, limits):
    """Resolve all wall crossings of one time step, in place on ``state``.

    ``state`` is ``[sx, sy, dx, dy]``, arrays (M,) of float64 positions after the
    step (possibly outside the box) and int64 velocities; digit i draws from
    ``rngs[i // per]``. The first bounce of every digit is vectorised; the rare
    digits still outside afterwards (a second wall within the same step) finish
    with the scalar :func:`bounce_one`.
    """
    sx, sy, dx, dy = state
    idx = np.flatnonzero(np.logical_or.reduce(_walls(sx, sy, *limits)))
    if idx.size == 0:
        return
    x, y, vx, vy = sx[idx], sy[idx], dx[idx], dy[idx]
    walls = _walls(x, y, *limits)
    cx, cy = _crossing(x, y, vx, vy, walls, *limits)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(vx != 0, (x - cx) / vx, (y - cy) / vy)
    if not deterministic:
        vx, vy = _new_velocities(rngs, per, idx, max_speed)
    left, right, upper, bottom = walls
    vx = np.where(right, -np.abs(vx), np.where(left, np.abs(vx), vx))
    vy = np.where(bottom, -np.abs(vy), np.where(upper, np.abs(vy), vy))
    sx[idx], sy[idx], dx[idx], dy[idx] = cx + vx * p, cy + vy * p, vx, vy
    again = np.flatnonzero(np.logical_or.reduce(_walls(sx[idx], sy[idx], *limits)))
    for k in again:
        i = idx[k]
        sx[i], sy[i], dx[i], dy[i] = bounce_one(
            float(sx[i]), float(sy[i]), int(dx[i]), int(dy[i]),
            lambda r=rngs[i // per]: int(r.integers(-max_speed, max_speed + 1)), limits,
            deterministic, (float(cx[k]), float(cy[k])))


def initial_conditions(rng: np.random.Generator, n: int, max_speed: int = 4,
                       limits: tuple[int, int] = (36, 36)) -> np.ndarray:
    """(n, 4) int64 random starts (row, col, d_row, d_col): integer positions
    uniform in the box, integer velocities uniform in [-max_speed, max_speed]."""
    x_max, y_max = limits
    return np.stack([rng.integers(0, x_max + 1, n), rng.integers(0, y_max + 1, n),
                     rng.integers(-max_speed, max_speed + 1, n),
                     rng.integers(-max_speed, max_speed + 1, n)], axis=1)


def sample_trajectories(
    rng,
    n: int,
    seq_len: int,
    max_speed: int = 4,
    deterministic: bool = False,
    limits: tuple[int, int] = (36, 36),
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Simulate ``n`` independent digit trajectories at once.

    Parameters
    ----------
    rng : numpy.random.Generator, or a sequence of G of them
        Source of randomness (initial conditions and stochastic bounces). With
        G distinct generators, ``n`` trajectories are drawn from each, in turn
        (G n in all), each generator giving exactly what it gives alone: batches
        of several seeds are simulated at once.
    n : int
        Number of trajectories (per generator).
    seq_len : int
        Number of frames T.
    max_speed : int
        Velocity components are integers in [-max_speed, max_speed].
    deterministic : bool
        Bounces only reflect the velocity instead of re-drawing it.
    limits : (int, int)
        Largest allowed top-left coordinate on each axis (frame size - digit size).
    init : np.ndarray, optional
        (G n, 4) integer initial conditions (row, col, d_row, d_col); drawn
        (:func:`initial_conditions`) if None.

    Returns
    -------
    np.ndarray
        (G n, T, 4) int64: rounded row, rounded column, row velocity and column
        velocity of each frame, as in the official ``latents``.
    """
    rngs = [rng] if rng is None or isinstance(rng, np.random.Generator) else list(rng)
    if init is None:
        init = np.concatenate([initial_conditions(r, n, max_speed, limits)
                               for r in rngs])
    init = np.asarray(init, dtype=np.int64)
    if init.shape != (len(rngs) * n, 4):
        raise ValueError(f"init has shape {init.shape}: expected ({len(rngs) * n}, 4), "
                         f"n = {n} starts for each of {len(rngs)} generator(s)")
    state = [init[:, 0].astype(np.float64), init[:, 1].astype(np.float64),
             init[:, 2].copy(), init[:, 3].copy()]
    out = np.empty((len(init), seq_len, 4), dtype=np.int64)
    for t in range(seq_len):
        _bounce(state, rngs, n, max_speed, deterministic, limits)
        out[:, t, 0], out[:, t, 1] = np.rint(state[0]), np.rint(state[1])
        out[:, t, 2], out[:, t, 3] = state[2], state[3]
        state[0] += state[2]
        state[1] += state[3]
    return out


def render(digits: np.ndarray, latents: np.ndarray, frame_size: int = 64) -> np.ndarray:
    """Draw digits at given positions; overlapping pixels add up, clipped at 255.

    Parameters
    ----------
    digits : np.ndarray
        (M, D, h, w) uint8 images of the D digits of each of M videos.
    latents : np.ndarray
        (M, T, D, 4) integers; ``[..., 0]`` and ``[..., 1]`` are the row and column
        of each digit's top-left corner, in [0, frame_size - h] and [0, frame_size - w].
    frame_size : int
        Height and width H = W of the frames.

    Returns
    -------
    np.ndarray
        (M, T, H, W) uint8 videos.
    """
    m, n_frames, n_digits = latents.shape[:3]
    h, w = digits.shape[-2:]
    canvas = np.zeros((m, n_frames, frame_size, frame_size), dtype=np.uint8)
    s = canvas.strides
    # windows[i, t, r, c] is the (h, w) patch of frame (i, t) whose corner is (r, c)
    windows = as_strided(canvas, (m, n_frames, frame_size - h + 1, frame_size - w + 1,
                                  h, w), (s[0], s[1], s[2], s[3], s[2], s[3]))
    vid, frame = np.arange(m)[:, None], np.arange(n_frames)[None, :]
    for d in range(n_digits):
        where = (vid, frame, latents[:, :, d, 0], latents[:, :, d, 1])
        img = digits[:, d, None]  # (M, 1, h, w), broadcast over T
        if d == 0:
            windows[where] = img
        else:  # saturating uint8 addition: a + min(b, 255 - a)
            patch = windows[where]
            room = np.subtract(255, patch, dtype=np.uint8)
            patch += np.minimum(room, img, out=room)
            windows[where] = patch
    return canvas


class MovingMNIST(torch.utils.data.Dataset):
    """Moving MNIST videos generated on the fly (training and validation).

    Items are uint8 tensors (T, 1, H, W) (batch them with :func:`collate_fn`). As
    in the official code the index is ignored: each access draws a new video.
    Videos are made ``chunk_size`` at a time and served from a buffer.

    Parameters
    ----------
    digits : np.ndarray
        (N, h, w) uint8 digit images to draw from (with replacement).
    seq_len : int
        Number of frames T (15 for training; change it with :meth:`change_seq_len`).
    deterministic : bool
        Deterministic bounces (reflection) instead of stochastic ones.
    num_digits : int
        Digits per video.
    frame_size : int
        Height and width of the frames.
    max_speed : int
        Velocity components are integers in [-max_speed, max_speed].
    length : int
        Nominal dataset length (an epoch), 500,000 as in the official code.
    seed : int, optional
        Seed of the generator; mixed with ``torch.initial_seed()`` inside
        DataLoader workers.
    chunk_size : int
        Number of videos simulated at once (the random stream, hence the exact
        videos of a given seed, depends on it).
    """

    def __init__(self, digits, seq_len=15, deterministic=False, num_digits=2,
                 frame_size=64, max_speed=4, length=500_000, seed=None, chunk_size=256):
        digits = np.asarray(digits, dtype=np.uint8)
        if digits.ndim != 3 or max(digits.shape[1:]) > frame_size:
            raise ValueError(f"digits must be (N, h, w) with h, w <= {frame_size}, "
                             f"got {digits.shape}")
        self.digits = digits
        self.deterministic = deterministic
        self.num_digits = num_digits
        self.frame_size = frame_size
        self.max_speed = max_speed
        self.length = length
        self.seed = seed
        self.chunk_size = chunk_size
        self._rng, self._owner = None, None
        self.seq_len = seq_len

    @classmethod
    def from_mnist(cls, mnist_dir=None, fold="train", download=False, **kwargs):
        """Build the dataset from the MNIST training digits of ``mnist_dir``.

        ``fold`` is ``"train"`` (95% of the training digits), ``"val"`` (the
        other 5%, official seed-42 split) or ``"all"``. The 5k offline subset is
        used when the full training files are absent. Other keyword arguments go
        to the constructor.
        """
        images, _ = load_mnist(mnist_dir, split="train", download=download)
        if fold != "all":
            images = images[split_indices(len(images), fold)]
        return cls(images, **kwargs)

    @property
    def seq_len(self) -> int:
        """Number of frames per video; setting it empties the buffer."""
        return self._seq_len

    @seq_len.setter
    def seq_len(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"seq_len must be positive, got {value}")
        self._seq_len = int(value)
        self._buffer, self._pos = None, 0

    def change_seq_len(self, seq_len: int) -> None:
        """Change the number of frames (e.g. longer clips for validation)."""
        self.seq_len = seq_len

    @property
    def rng(self) -> np.random.Generator:
        """This process' (or DataLoader worker's) random generator."""
        return self._ensure_rng()

    def _ensure_rng(self) -> np.random.Generator:
        """Create the generator if absent or inherited from another process/worker."""
        info = torch.utils.data.get_worker_info()
        owner = (os.getpid(), None if info is None else info.id)
        if self._rng is None or self._owner != owner:
            entropy = [] if self.seed is None else [self.seed]
            if info is not None or self.seed is None:
                entropy.append(torch.initial_seed())
            self._rng, self._owner = np.random.default_rng(entropy), owner
            self._buffer, self._pos = None, 0
        return self._rng

    def reseed(self, seed: int | None) -> None:
        """Restart the random stream from ``seed``."""
        self.seed, self._rng = seed, None
        self._buffer, self._pos = None, 0

    def generate(self, n: int, return_latents: bool = False, rng=None):
        """Draw ``n`` new videos (from ``rng`` if given, else this object's stream).

        Parameters
        ----------
        n : int
            Number of videos.
        return_latents : bool
            Also return the digit positions and velocities.
        rng : numpy.random.Generator, optional
            Generator to draw from instead of :attr:`rng` (e.g. one seeded per
            training step).

        Returns
        -------
        videos : np.ndarray
            (n, T, 1, H, W) uint8.
        latents : np.ndarray
            (n, T, D, 4) int64 positions and velocities, if ``return_latents``.
        """
        return self.generate_many(n, [self.rng if rng is None else rng],
                                  return_latents)

    def generate_many(self, n: int, rngs, return_latents: bool = False):
        """:meth:`generate` for several distinct generators at once: ``n`` videos
        from each, in turn ((G n, T, 1, H, W)), each generator's videos exactly
        those of ``generate(n, rng=...)`` (several times faster for small ``n``)."""
        d = self.num_digits
        limits = (self.frame_size - self.digits.shape[1],
                  self.frame_size - self.digits.shape[2])
        ids, init = [], []
        for rng in rngs:  # each generator draws in the order it does alone
            ids.append(rng.integers(0, len(self.digits), size=(n, d)))
            init.append(initial_conditions(rng, n * d, self.max_speed, limits))
        m = n * len(rngs)
        traj = sample_trajectories(rngs, n * d, self.seq_len, self.max_speed,
                                   self.deterministic, limits, np.concatenate(init))
        latents = traj.reshape(m, d, self.seq_len, 4).transpose(0, 2, 1, 3)
        videos = render(self.digits[np.concatenate(ids)], latents,
                        self.frame_size)[:, :, None]
        return (videos, latents) if return_latents else videos

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        """A new random video (T, 1, H, W) uint8; ``index`` is ignored."""
        self._ensure_rng()  # first: a new worker must not reuse a copied buffer
        if self._buffer is None or self._pos >= len(self._buffer):
            self._buffer, self._pos = self.generate(self.chunk_size), 0
        self._pos += 1
        return torch.from_numpy(self._buffer[self._pos - 1])


def collate_fn(videos) -> torch.Tensor:
    """Stack videos into a float batch (T, B, C, H, W) with values in [0, 1].

    Parameters
    ----------
    videos : sequence of array-like
        B videos, each (T, C, H, W) or (T, H, W); uint8 in [0, 255] (divided by
        255) or floating point already in [0, 1] (kept).

    Returns
    -------
    torch.Tensor
        (T, B, C, H, W) float32.
    """
    batch = torch.stack([torch.as_tensor(v) for v in videos], dim=1)
    if batch.dim() == 4:
        batch = batch.unsqueeze(2)
    if batch.dtype == torch.uint8:
        return batch.float().div_(255)
    return batch.float()
