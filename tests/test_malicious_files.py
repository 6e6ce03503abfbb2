"""No file the package reads can run code: every loader, fed a pickle that would
create a file when unpickled, refuses it and the file never appears."""
import pathlib

import numpy as np
import pytest
import torch

from srvp.data import human, kth, video_io
from srvp.data.moving_mnist_testset import MovingMNISTTestSet
from srvp.metrics.i3d import load_i3d
from srvp.metrics.lpips import load_lpips


class Payload:
    """Unpickling this calls Path.touch on the marker: code run from a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _torch_file(path, marker):
    torch.save({"weight": torch.zeros(2), "evil": Payload(marker)}, path)
    return path


def _npy(path, marker):
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return path


def _npz(path, marker, key):
    np.savez(path, **{key: np.array([Payload(marker)], dtype=object)})
    return path


LOADERS = {
    "lpips weights": lambda d, m: load_lpips(_torch_file(d / "alexnet.pth", m)),
    "i3d weights": lambda d, m: load_i3d(_torch_file(d / "i3d.pt", m)),
    "moving mnist test set": lambda d, m: MovingMNISTTestSet(
        _npz(d / "mmnist_test.npz", m, "sequences")),
    "kth test set": lambda d, m: kth.KTHTestSet(_npz(d / "svg_test_set_40.npz", m,
                                                     "videos")),
    "converted video (.npy)": lambda d, m: video_io.open_npy(_npy(d / "v.npy", m),
                                                             mmap=False),
    "converted human video (.npz)": lambda d, m: human.load_video(
        _npz(d / "v.npz", m, "image")),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_loader_refuses_a_malicious_pickle(tmp_path, name):
    marker = tmp_path / "code-ran"
    with pytest.raises(Exception) as info:  # noqa: B017 - the type varies by loader
        LOADERS[name](tmp_path, marker)
    assert not marker.exists(), f"{name}: unpickling ran code"
    assert not isinstance(info.value, (AssertionError, NameError, AttributeError)), \
        info.value
