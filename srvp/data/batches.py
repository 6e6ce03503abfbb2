"""Float batches from uint8 videos: training batches indexed by step, and test
batches (book ch. 4 and 5).

Batch ``i`` of a training run is drawn from a NumPy generator seeded with
``(seed, rank, i)``, so a resumed run sees exactly the batches the uninterrupted
run would have seen, whatever the number of loader workers. The
:class:`StepBatches` dataset serves whole batches indexed by step, which lets a
``DataLoader`` prefetch them in worker processes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def to_batch(videos: np.ndarray) -> torch.Tensor:
    """uint8 videos (B, T, C, H, W) -> float batch (T, B, C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(videos.swapaxes(0, 1))).float() / 255


class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is the batch (T, B, C, H, W) float in [0, 1] of step ``i``.

    Parameters
    ----------
    source : an on-the-fly video generator with ``generate(n, rng=...)`` returning
        uint8 videos (n, T, C, H, W).
    batch_size : videos per batch (per process).
    seed, rank : the run's seed and this process' rank.
    n_steps : number of steps (the dataset length).
    """

    def __init__(self, source, batch_size: int, seed: int, rank: int, n_steps: int):
        self.source, self.batch_size = source, batch_size
        self.seed, self.rank, self.n_steps = seed, rank, n_steps

    def __len__(self) -> int:
        return self.n_steps

    def __getitem__(self, step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.rank, int(step)])
        return to_batch(self.source.generate(self.batch_size, rng=rng))


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
