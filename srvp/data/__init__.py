"""Datasets: Moving MNIST (on the fly), KTH, Human3.6M and BAIR, and test sets.

See book ch. 1. Videos are uint8 (T, C, H, W) items; :func:`collate_fn` batches
them into float tensors (T, B, C, H, W) in [0, 1]. Training sources draw uint8
clips (n, T, C, H, W) with ``generate(n, rng=...)``.
"""

from .bair import Bair, BairTestSet, convert_bair, download_bair
from .common import InvalidTestSetError, split_indices
from .human import Human, HumanTestSet, convert_human
from .kth import KTH, KTHTestSet, convert_kth, download_kth
from .mnist_idx import (
    ENV_VAR,
    IDXFormatError,
    MNISTNotFoundError,
    download_mnist,
    load_mnist,
    read_idx,
)
from .moving_mnist import MovingMNIST, collate_fn, render, sample_trajectories
from .moving_mnist_testset import (
    MovingMNISTTestSet,
    build_test_set,
    load_test_set,
    make_test_set,
    official_filename,
    save_test_set,
)
from .tfrecord import TFRecordError

__all__ = [
    "Bair",
    "BairTestSet",
    "Human",
    "HumanTestSet",
    "KTH",
    "KTHTestSet",
    "TFRecordError",
    "convert_bair",
    "convert_human",
    "convert_kth",
    "download_bair",
    "download_kth",
    "ENV_VAR",
    "IDXFormatError",
    "InvalidTestSetError",
    "MNISTNotFoundError",
    "MovingMNIST",
    "MovingMNISTTestSet",
    "build_test_set",
    "collate_fn",
    "download_mnist",
    "load_mnist",
    "load_test_set",
    "make_test_set",
    "official_filename",
    "read_idx",
    "render",
    "sample_trajectories",
    "save_test_set",
    "split_indices",
]
