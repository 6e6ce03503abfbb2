"""A small MNIST-format source for the tests: stroke drawings as gzip IDX files.

Kept apart from ``helpers`` so that ``conftest`` imports only numpy here.
"""
import gzip
from pathlib import Path

import numpy as np

MNIST_PREFIXES = {"train": "train", "test": "t10k", "train5k": "train5k"}
#: Images per split of the ``tiny_mnist_dir`` fixture (conftest.py).
TINY_MNIST_SIZES = {"train": 480, "test": 240}


def digit_like_images(n, seed=0):
    """``n`` deterministic 28x28 uint8 images of one to three pen strokes.

    Each stroke is a quadratic Bezier curve inside the central 20x20 box (as
    MNIST digits are), its ends at least 10 pixels apart (city-block), drawn with
    a soft pen: 255 within 0.8 pixel of the curve, fading to 0 at 2 pixels. The
    background is 0, as in MNIST.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:28, 0:28]
    pixels = np.stack([rows.ravel(), cols.ravel()], 1).astype(np.float64)  # (784, 2)
    s = np.linspace(0, 1, 48)[:, None]
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        points = []
        for _ in range(rng.integers(1, 4)):
            a, b, c = rng.uniform(4, 23, size=(3, 2))
            while np.abs(a - c).sum() < 10:  # no dots: strokes span a few pixels
                c = rng.uniform(4, 23, size=2)
            points.append((1 - s) ** 2 * a + 2 * s * (1 - s) * b + s ** 2 * c)
        points = np.concatenate(points)  # (P, 2)
        diff = pixels[:, None] - points[None]  # (784, P, 2)
        dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff).min(1))
        ink = np.clip((2.0 - dist) / 1.2, 0, 1).reshape(28, 28)
        images[i] = np.round(255 * ink)
    return images


def idx_bytes(array):
    """The IDX encoding of a uint8 array: magic 0x0000, type 0x08, ndim, sizes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_mnist_split(folder, split, images, labels):
    """Write ``images`` (N, 28, 28) and ``labels`` (N,) as the gzip IDX files of
    ``split`` ("train", "test" or "train5k") under their standard names, with a
    fixed gzip time stamp so that equal arrays give byte-identical files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = MNIST_PREFIXES[split]
    paths = (folder / f"{prefix}-images-idx3-ubyte.gz",
             folder / f"{prefix}-labels-idx1-ubyte.gz")
    for path, array in zip(paths, (images, labels)):
        path.write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return paths
