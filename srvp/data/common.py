"""What every dataset module shares: the official train/validation split, the
test-set error, and where converted outputs go (book ch. 1).

Dataset modules (Moving MNIST, KTH, Human3.6M, BAIR) import these from here,
never from one another.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Fraction of the training items kept for training (the rest is validation).
TRAIN_FRACTION = 0.95
#: Seed of the official train/validation split.
SPLIT_SEED = 42


class InvalidTestSetError(ValueError):
    """A test-set file does not hold arrays of the expected shapes."""


def split_indices(n: int, fold: str) -> np.ndarray:
    """Indices of the official 95% / 5% train/validation split of ``n`` items.

    The ids ``0..n-1`` are shuffled with ``RandomState(42)``; the first
    ``int(0.95 * n)`` shuffled ids form the training fold, the rest the validation
    fold. Items keep their original order within a fold. Moving MNIST splits its
    training digits this way; KTH, Human3.6M and BAIR their training videos.

    Parameters
    ----------
    n : int
        Number of items (training digits or videos).
    fold : {"train", "val"}
        Which fold.

    Returns
    -------
    np.ndarray
        Sorted int64 indices, (int(0.95 n),) or (n - int(0.95 n),).
    """
    if fold not in ("train", "val"):
        raise ValueError(f"fold must be 'train' or 'val', got {fold!r}")
    ids = np.arange(n)
    np.random.RandomState(SPLIT_SEED).shuffle(ids)
    n_train = int(TRAIN_FRACTION * n)
    chosen = ids[:n_train] if fold == "train" else ids[n_train:]
    return np.sort(chosen)


def output_folder(data_dir: str | os.PathLike,
                  out_dir: str | os.PathLike | None = None) -> Path:
    """Where a conversion writes: ``out_dir``, by default ``data_dir``."""
    return Path(out_dir if out_dir is not None else data_dir).expanduser()
