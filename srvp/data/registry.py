"""The one dataset switch: a dataset name -> its training and validation sources
and its test set (book ch. 1).

The trainer, ``evaluate``, the command line and the book all go through
:func:`get`; adding a dataset means an entry in :data:`DATASETS` and the
dataset's own module, nothing else: the module reads the data and declares its
preparation steps (``STEPS``, see :mod:`srvp.data.steps`), from which
``python -m srvp data`` builds its sub-commands (:func:`data_steps`).

Training and validation *sources* draw uint8 clips (n, T, C, H, W) with
``generate(n, rng=...)``; a *test set* is a list of uint8 videos (T, C, H, W),
served as float batches by :class:`~srvp.data.batches.TestBatches`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import Config
from .batches import TestBatches, to_batch
from .steps import Step


@dataclass(frozen=True)
class Dataset:
    """How to read one dataset.

    ``sources(cfg, data_dir)`` returns the (training, validation) sources;
    ``test_videos(cfg, data_dir, nt, n_videos)`` the first ``n_videos`` test
    videos (all if None), each (nt, C, H, W) uint8. ``reads_mnist``: the data
    folder holds MNIST files and defaults to ``$SRVP_MNIST_DIR``. ``steps()``:
    its ``python -m srvp data`` sub-commands (download, conversion, test set),
    usually its module's ``STEPS``; datasets may share them.
    """

    name: str
    description: str
    sources: Callable[[Config, Optional[str]], Tuple[object, object]]
    test_videos: Callable[[Config, str, int, Optional[int]], List[torch.Tensor]]
    reads_mnist: bool = False
    steps: Callable[[], Sequence[Step]] = tuple


# ------------------------------------------------------------ Moving MNIST
def _mnist_sources(cfg: Config, data_dir: Optional[str]):
    from .moving_mnist import MovingMNIST

    if data_dir is not None and not Path(data_dir).is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir}: no such folder")
    common = dict(deterministic=cfg.deterministic, num_digits=cfg.ndigits,
                  max_speed=cfg.max_speed)
    return (MovingMNIST.from_mnist(data_dir, fold="train", seq_len=cfg.seq_len,
                                   **common),
            MovingMNIST.from_mnist(data_dir, fold="val", seq_len=cfg.val_seq_len,
                                   **common))


def _mnist_test_videos(cfg: Config, data_dir, nt: int, n_videos: Optional[int]):
    """The official test set: its stored ``.npz`` (``python -m srvp data
    mmnist-testset``) if the folder holds it, else rebuilt in memory from the
    MNIST test digits (bit-identical)."""
    from .mnist_idx import load_mnist, resolve_mnist_dir
    from .moving_mnist_testset import (
        MovingMNISTTestSet,
        build_test_set,
        official_filename,
    )

    data_dir = resolve_mnist_dir(data_dir)
    if (data_dir / official_filename(cfg.deterministic)).exists() or \
            data_dir.suffix == ".npz":
        ds = MovingMNISTTestSet(data_dir, cfg.deterministic, seq_len=nt)
        return [ds[i] for i in range(_count(len(ds), n_videos))]
    images, labels = load_mnist(data_dir, split="test")
    seqs = build_test_set(images, labels, deterministic=cfg.deterministic,
                          num_videos=n_videos, progress=False)["sequences"]
    if nt > len(seqs):  # a longer set draws other paths: it is not this one, longer
        raise ValueError(f"{nt} frames asked, the official test set rebuilt from the "
                         f"MNIST digits has {len(seqs)}: build a longer one with "
                         f"`python -m srvp data mmnist-testset --seq-len {nt} --out "
                         "DIR` and pass --data-dir DIR")
    return [torch.from_numpy(seqs[:nt, i]).unsqueeze(1) for i in range(seqs.shape[1])]


def _mnist_steps() -> Tuple[Step, ...]:
    from . import mnist_idx, moving_mnist_testset
    return (*moving_mnist_testset.STEPS, *mnist_idx.STEPS)


# ----------------------------------------------------- KTH, Human3.6M, BAIR
def _video_sources(make, **extra):
    def sources(cfg: Config, data_dir: Optional[str]):
        if data_dir is None or not Path(data_dir).is_dir():
            raise FileNotFoundError(f"dataset {cfg.dataset!r} needs --data-dir, the "
                                    f"folder of its converted videos (got {data_dir})")
        kw = {k: getattr(cfg, v) for k, v in extra.items()}
        return (make()(data_dir, fold="train", seq_len=cfg.seq_len, **kw),
                make()(data_dir, fold="val", seq_len=cfg.val_seq_len, **kw))
    return sources


def _video_test(make, **extra):
    def test_videos(cfg: Config, data_dir, nt: int, n_videos: Optional[int]):
        kw = {k: getattr(cfg, v) for k, v in extra.items()}
        ds = make()(data_dir, seq_len=nt, **kw)
        return [ds[i] for i in range(_count(len(ds), n_videos))]
    return test_videos


def _kth():
    from . import kth
    return kth


def _human():
    from . import human
    return human


def _bair():
    from . import bair
    return bair


#: Every dataset the package reads, by the name ``Config.dataset`` holds.
DATASETS: Dict[str, Dataset] = {d.name: d for d in (
    Dataset("smmnist", "Stochastic Moving MNIST (two digits, random bounces)",
            _mnist_sources, _mnist_test_videos, reads_mnist=True,
            steps=_mnist_steps),
    Dataset("mmnist", "deterministic Moving MNIST", _mnist_sources,
            _mnist_test_videos, reads_mnist=True, steps=_mnist_steps),
    Dataset("kth", "KTH human actions (converted with `srvp data kth-convert`)",
            _video_sources(lambda: _kth().KTH.from_dir, image_size="nx"),
            _video_test(lambda: _kth().KTHTestSet), steps=lambda: _kth().STEPS),
    Dataset("human", "Human3.6M (converted with `srvp data human-convert`)",
            _video_sources(lambda: _human().Human.from_dir, subsampling="subsampling"),
            _video_test(lambda: _human().HumanTestSet, subsampling="subsampling"),
            steps=lambda: _human().STEPS),
    Dataset("bair", "BAIR robot pushing (converted with `srvp data bair-convert`)",
            _video_sources(lambda: _bair().Bair.from_dir),
            _video_test(lambda: _bair().BairTestSet), steps=lambda: _bair().STEPS),
)}


def get(name: str) -> Dataset:
    """The dataset called ``name``; a ``ValueError`` lists the known ones."""
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r}: no data pipeline; known datasets: "
                         f"{', '.join(DATASETS)}")
    return DATASETS[name]


def data_steps() -> List[Step]:
    """The ``python -m srvp data`` steps of every dataset, in registry order;
    a step that several datasets share (Moving MNIST) comes once."""
    found: Dict[str, Step] = {}
    for dataset in DATASETS.values():
        for step in dataset.steps():
            if found.setdefault(step.name, step) is not step:
                raise ValueError(f"two datasets declare the step {step.name!r}")
    return list(found.values())


def training_sources(cfg: Config, data_dir: Optional[str]) -> Tuple[object, object]:
    """The training and validation sources of ``cfg.dataset``.

    Moving MNIST reads the MNIST training digits from ``data_dir`` (or
    ``$SRVP_MNIST_DIR``): 95% train, 5% validation (official split). KTH,
    Human3.6M and BAIR read the converted videos of ``data_dir``, memory-mapped;
    their validation clips are the official seed-42 5% of the training videos,
    ``cfg.val_seq_len`` frames long. Missing files raise a
    ``FileNotFoundError`` naming them, before any training starts.
    """
    return get(cfg.dataset).sources(cfg, data_dir)


def validation_batches(source, cfg: Config, seed: int) -> List[torch.Tensor]:
    """The fixed validation set: ``val_batches`` batches of ``val_batch_size``."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    return [to_batch(source.generate(cfg.val_batch_size, rng=rng))
            for _ in range(cfg.val_batches)]


def test_batches(cfg: Config, data_dir, nt: int, batch_size: int,
                 n_videos: Optional[int] = None) -> TestBatches:
    """The official test videos of ``cfg.dataset`` (the first ``n_videos``),
    ``nt`` frames each, as float batches (T, B, C, H, W).

    Moving MNIST: ``data_dir`` holds the test-set ``.npz`` or the MNIST test IDX
    files (default ``$SRVP_MNIST_DIR``). KTH: ``svg_test_set_40.npz`` or its
    folder; Human3.6M: the folder holding ``test_set_53_8``; BAIR: the folder
    holding ``processed/test``.
    """
    if n_videos is not None and n_videos < 1:
        raise ValueError(f"n_videos={n_videos}: must be at least 1")
    return TestBatches(get(cfg.dataset).test_videos(cfg, data_dir, nt, n_videos),
                       batch_size)


test_batches.__test__ = False  # not a pytest function


def _count(available: int, wanted: Optional[int]) -> int:
    if wanted is None:
        return available
    if wanted > available:
        raise ValueError(f"n_videos={wanted}: the test set holds only {available} "
                         "videos")
    return wanted
