"""Shared fixtures: seeds, the offline MNIST files, the GPU marker."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _find_mnist_dir():
    candidates = [os.environ.get("SRVP_MNIST_DIR"),
                  REPO.parent / "shared" / "data" / "mnist"]
    for c in candidates:
        if c and (Path(c) / "t10k-images-idx3-ubyte.gz").exists():
            return Path(c)
    return None


@pytest.fixture
def mnist_dir():
    """Directory with real MNIST IDX files (``SRVP_MNIST_DIR`` or ``../shared``)."""
    path = _find_mnist_dir()
    if path is None:
        pytest.skip("MNIST IDX files not found: set SRVP_MNIST_DIR")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
