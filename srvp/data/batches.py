"""Float batches from uint8 videos: training batches indexed by step, and test
batches (book ch. 4 and 5).

Batch ``i`` of a training run is drawn from a NumPy generator seeded with
``(seed, rank, i)``, so a resumed run sees exactly the batches the uninterrupted
run would have seen, whatever the number of loader workers. The
:class:`StepBatches` dataset serves whole batches indexed by step, which lets a
``DataLoader`` prefetch them in worker processes; it makes the batches of
several steps at once (one vectorised simulation, each step still from its own
generator), since making one small batch costs mostly Python overhead.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def to_batch(videos: np.ndarray) -> torch.Tensor:
    """uint8 videos (B, T, C, H, W) -> float batch (T, B, C, H, W) in [0, 1].

    One pass: NumPy divides in float32 straight into the transposed layout (the
    same correctly rounded x / 255 as ``tensor.float() / 255``)."""
    videos = np.asarray(videos)
    out = np.empty((videos.shape[1], videos.shape[0], *videos.shape[2:]), np.float32)
    np.divide(videos.swapaxes(0, 1), np.float32(255), out=out)
    return torch.from_numpy(out)


class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is the batch (T, B, C, H, W) float in [0, 1] of step ``i``.

    Parameters
    ----------
    source : an on-the-fly video generator with ``generate(n, rng=...)`` returning
        uint8 videos (n, T, C, H, W).
    batch_size : videos per batch (per process).
    seed, rank : the run's seed and this process' rank.
    n_steps : number of steps (the dataset length).
    block : batches made at once (default: about 256 videos' worth), for a
        source with ``generate_many``; the batches are the same for any block.
        Made for the trainer's sequential steps: the block stays in memory
        until its last step is served, and a step outside it starts a new one.
    """

    def __init__(self, source, batch_size: int, seed: int, rank: int, n_steps: int,
                 block: int | None = None):
        self.source, self.batch_size = source, batch_size
        self.seed, self.rank, self.n_steps = seed, rank, n_steps
        self.block = block if block is not None else max(1, 256 // batch_size)
        self._ready: dict = {}

    def __len__(self) -> int:
        return self.n_steps

    def __getitem__(self, step: int) -> torch.Tensor:
        step = int(step)
        if step not in self._ready:
            self._make(step)
        return to_batch(self._ready.pop(step))

    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.rank, step])

    def _make(self, step: int) -> None:
        """Make the batches of ``step`` and of the next steps this process will
        ask for: a ``DataLoader`` gives worker k of W the steps k, k + W, ..."""
        many = getattr(self.source, "generate_many", None)
        if many is None or self.block == 1:
            self._ready = {step: self.source.generate(self.batch_size,
                                                      rng=self._rng(step))}
            return
        info = torch.utils.data.get_worker_info()
        stride = 1 if info is None else info.num_workers
        steps = [s for s in range(step, step + stride * self.block, stride)
                 if s < self.n_steps] or [step]
        videos = many(self.batch_size, [self._rng(s) for s in steps])
        self._ready = dict(zip(steps, np.split(videos, len(steps))))


class TestBatches:
    """Test videos held as stored (uint8 tensors (T, C, H, W)), served as float
    batches (T, B, C, H, W) in [0, 1].

    Converting one batch at a time keeps a 5,000-video evaluation from holding
    every video in float32 (2 GB for Moving MNIST) on top of its samples.
    """

    __test__ = False  # not a pytest class

    def __init__(self, videos: Sequence[torch.Tensor], batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        self.videos, self.batch_size = videos, batch_size

    def __len__(self) -> int:
        return -(-len(self.videos) // self.batch_size)

    def __iter__(self):
        from .moving_mnist import collate_fn

        for i in range(0, len(self.videos), self.batch_size):
            yield collate_fn(self.videos[i:i + self.batch_size])
