"""Shared fixtures: seeds, MNIST-format digit files, the GPU marker.

The tests are self-contained: a fresh clone runs them without any folder beside
the repository; only those that need the real MNIST digits, or compare a fixture
with its source in ``../shared``, skip there (saying what is missing).

- ``tiny_mnist_dir`` (session): a small MNIST-format source written by the tests
  themselves (gzip IDX files under the standard names, ``train-*`` and
  ``t10k-*``; stroke drawings, deterministic from a seed, see
  :func:`fake_mnist.digit_like_images`). Tests that need *some* digits use it.
- ``mnist_dir``: the real MNIST files, for the few tests whose point is the real
  digits (e.g. bit-exactness with the official Moving MNIST test set). Looked up
  in ``$SRVP_MNIST_DIR``, then in ``../shared/data/mnist`` beside the repository;
  the test skips, saying what is missing and how to provide it, when neither
  holds the test files.
- ``shared_dir``: the ``../shared`` folder beside the repository, or a skip.
- The state-dict spec of the official presets ships with the tests as
  ``tests/fixtures/official_state_dicts.json`` (a copy of
  ``../shared/spec/official_state_dicts.json``, produced by running the official
  code; ``test_official.py`` checks that the two have not drifted apart).

With nbval (``make test`` runs the executed chapters again from ``_build/smoke``),
the chapters' kernels get ``SRVP_BOOK_DIR=book/`` and the ``SRVP_MNIST_DIR`` of
this lookup, as ``scripts/build_book.py`` gives them (see :mod:`srvp.book`).

Set ``SRVP_TEST_NO_SHARED=1`` to ignore ``../shared`` (``$SRVP_MNIST_DIR`` is
still honoured): ``env -u SRVP_MNIST_DIR SRVP_TEST_NO_SHARED=1 pytest -rs ...``
shows what a clone without ``../shared`` runs and skips.
"""
import os
from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
from fake_mnist import TINY_MNIST_SIZES, digit_like_images, write_mnist_split

REPO = Path(__file__).resolve().parents[1]

#: Names of the real MNIST test files that ``mnist_dir`` needs.
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _shared_ignored():
    return os.environ.get("SRVP_TEST_NO_SHARED", "") not in ("", "0")


def find_shared_dir():
    """``../shared`` beside the repository, or None (absent, or disabled by
    ``SRVP_TEST_NO_SHARED``)."""
    if _shared_ignored():
        return None
    path = REPO.parent / "shared"
    return path if path.is_dir() else None


def _find_mnist_dir():
    shared = find_shared_dir()
    candidates = [os.environ.get("SRVP_MNIST_DIR"),
                  shared / "data" / "mnist" if shared else None]
    for c in candidates:
        if c and all((Path(c) / name).is_file() for name in MNIST_TEST_FILES):
            return Path(c)
    return None


def _shared_state():
    """Why ``../shared`` is not used: for skip reasons."""
    if _shared_ignored():
        return "ignored (SRVP_TEST_NO_SHARED is set)"
    return f"absent ({REPO.parent / 'shared'})"


def mnist_missing_reason():
    """Why ``mnist_dir`` skips: what is missing, and how to provide it."""
    env = os.environ.get("SRVP_MNIST_DIR")
    where = f"SRVP_MNIST_DIR={env} lacks them" if env else "SRVP_MNIST_DIR is unset"
    shared = "lacking them" if find_shared_dir() else _shared_state()
    return (f"needs the real MNIST test files ({', '.join(MNIST_TEST_FILES)}): "
            f"{where} and ../shared/data/mnist is {shared}; run `python -m srvp "
            "data mnist-download --out DIR` and set SRVP_MNIST_DIR=DIR")


@pytest.fixture
def mnist_dir():
    """Directory with the real MNIST test IDX files (see the module docstring)."""
    path = _find_mnist_dir()
    if path is None:
        pytest.skip(mnist_missing_reason())
    return path


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory):
    """A small MNIST-format source: 480 training and 240 test 'digits' (pen
    strokes, seed 0 and 1) with balanced labels 0-9, as gzip IDX files."""
    folder = tmp_path_factory.mktemp("tiny_mnist")
    for seed, (split, n) in enumerate(TINY_MNIST_SIZES.items()):
        images = digit_like_images(n, seed=seed)
        labels = np.random.default_rng(seed).permutation(np.arange(n) % 10)
        write_mnist_split(folder, split, images, labels.astype(np.uint8))
    return folder


@pytest.fixture
def shared_dir():
    """The ``../shared`` folder beside the repository (skips without it)."""
    path = find_shared_dir()
    if path is None:
        pytest.skip(f"needs ../shared beside the repository: {_shared_state()}")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    """Under nbval, point the chapters' kernels (which inherit this process's
    environment) at the book's files and at MNIST (module docstring)."""
    if not (config.getoption("nbval", False) or config.getoption("nbval_lax", False)):
        return
    os.environ.setdefault("SRVP_BOOK_DIR", str(REPO / "book"))
    mnist = _find_mnist_dir()
    if mnist is not None:
        os.environ.setdefault("SRVP_MNIST_DIR", str(mnist))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def serve():
    """``serve(folder)`` -> a running :class:`Server`; all shut down at the end."""
    servers = []
    yield lambda root: servers.append(helpers.Server(root)) or servers[-1]
    for s in servers:
        s.close()
