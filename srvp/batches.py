"""Training batches that depend only on (seed, rank, step) (book ch. 4).

Batch ``i`` of a run is drawn from a NumPy generator seeded with
``(seed, rank, i)``, so a resumed run sees exactly the batches the uninterrupted
run would have seen, whatever the number of loader workers. The
:class:`StepBatches` dataset serves whole batches indexed by step, which lets a
``DataLoader`` prefetch them in worker processes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from .config import Config

MNIST_DATASETS = ("smmnist", "mmnist")
VIDEO_DATASETS = ("kth", "human", "bair")


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
        videos = self.source.generate(self.batch_size, rng=rng)
        return to_batch(videos)


def to_batch(videos: np.ndarray) -> torch.Tensor:
    """uint8 videos (B, T, C, H, W) -> float batch (T, B, C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(videos.swapaxes(0, 1))).float() / 255


def make_sources(cfg: Config, data_dir: Optional[str]) -> Tuple[object, object]:
    """The training and validation generators of ``cfg.dataset``.

    Moving MNIST reads the MNIST training digits from ``data_dir`` (or
    ``SRVP_MNIST_DIR``): 95% train, 5% validation (official split). KTH,
    Human3.6M and BAIR read the converted videos of ``data_dir`` (see
    ``python -m srvp data --help``), memory-mapped; their validation clips are
    the official seed-42 5% of the training videos, ``cfg.seq_len_test`` frames
    long. Raises a ``FileNotFoundError`` naming the missing files before any
    training starts.
    """
    if cfg.dataset in VIDEO_DATASETS:
        return _video_sources(cfg, data_dir)
    if cfg.dataset not in MNIST_DATASETS:
        known = MNIST_DATASETS + VIDEO_DATASETS
        raise NotImplementedError(f"dataset {cfg.dataset!r}: no training data "
                                  f"pipeline (known: {known})")
    from .data.mmnist import MovingMNIST

    if data_dir is not None and not Path(data_dir).is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir}: no such folder")
    common = dict(deterministic=cfg.deterministic, num_digits=cfg.ndigits,
                  max_speed=cfg.max_speed)
    train = MovingMNIST.from_mnist(data_dir, fold="train", seq_len=cfg.seq_len,
                                   **common)
    val = MovingMNIST.from_mnist(data_dir, fold="val", seq_len=cfg.seq_len_test,
                                 **common)
    return train, val


def _video_sources(cfg: Config, data_dir: Optional[str]) -> Tuple[object, object]:
    """Training and validation clips of KTH, Human3.6M or BAIR."""
    if data_dir is None or not Path(data_dir).is_dir():
        raise FileNotFoundError(f"dataset {cfg.dataset!r} needs --data-dir, the "
                                f"folder of its converted videos (got {data_dir})")
    from .data import bair, human, kth

    if cfg.dataset == "kth":
        make, extra = kth.KTH.from_dir, {"image_size": cfg.nx}
    elif cfg.dataset == "human":
        make, extra = human.Human.from_dir, {"subsampling": cfg.subsampling}
    else:
        make, extra = bair.Bair.from_dir, {}
    train = make(data_dir, fold="train", seq_len=cfg.seq_len, **extra)
    val = make(data_dir, fold="val", seq_len=cfg.seq_len_test, **extra)
    return train, val


def validation_batches(source, cfg: Config, seed: int):
    """The fixed validation set: ``n_iter_test`` batches of ``batch_size_test``."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    return [to_batch(source.generate(cfg.batch_size_test, rng=rng))
            for _ in range(cfg.n_iter_test)]
