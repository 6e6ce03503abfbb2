"""digits_overlap: which test frames show two Moving MNIST digits crossing."""
import numpy as np
import pytest

from srvp.data import build_test_set, load_mnist, render
from srvp.data.moving_mnist_testset import digits_overlap


def latents_of(*frames):
    """(T, 1, D, 4) latents from per-frame lists of (row, column) corners."""
    out = np.zeros((len(frames), 1, len(frames[0]), 4), dtype=np.int64)
    for t, corners in enumerate(frames):
        out[t, 0, :, :2] = corners
    return out


def test_two_digits_overlap_and_edges():
    lat = latents_of([(0, 0), (27, 27)],  # one pixel in common
                     [(0, 0), (28, 0)],  # boxes touch along an edge: no pixel
                     [(0, 0), (0, 28)],
                     [(36, 36), (8, 36)],  # rows 36..63 and 8..35 touch
                     [(10, 20), (10, 20)],  # same place
                     [(5, 33), (20, 3)])  # |rows| < 28 but columns apart
    got = digits_overlap(lat)
    assert got.shape == (6, 1) and got.dtype == bool
    assert got[:, 0].tolist() == [True, False, False, False, True, False]


def test_velocity_columns_are_ignored():
    lat = latents_of([(0, 0), (30, 30)])
    lat[..., 2:] = [[[-4, 4], [4, -4]]]  # velocities would "overlap" if used
    assert not digits_overlap(lat).any()


def test_three_digits_any_pair_counts():
    lat = latents_of([(0, 0), (30, 30), (0, 36)],  # all pairs apart
                     [(0, 0), (30, 30), (10, 20)],  # 3rd crosses both others
                     [(36, 0), (0, 36), (36, 27)],  # only digits 1 and 3
                     [(0, 0), (0, 28), (28, 0)])  # every pair touches only
    assert digits_overlap(lat)[:, 0].tolist() == [False, True, True, False]


def test_single_digit_and_digit_size():
    assert not digits_overlap(latents_of([(3, 3)], [(30, 30)])).any()
    lat = latents_of([(0, 0), (22, 22)])  # 28-pixel boxes cross, 20-pixel do not
    assert digits_overlap(lat).all() and not digits_overlap(lat, 20).any()
    with pytest.raises(ValueError, match="D, 4"):
        digits_overlap(np.zeros((5, 2, 2)))


def test_matches_the_renderings_of_a_built_test_set(tiny_mnist_dir):
    # the official test-set builder on stand-in digits: any inked digits will do
    images, labels = load_mnist(tiny_mnist_dir, split="test")
    test = build_test_set(images, labels, num_videos=12, progress=False)
    overlap = digits_overlap(test["latents"])  # (T, N)
    lat = test["latents"].transpose(1, 0, 2, 3)  # (N, T, D, 4), as render wants
    n, n_digits = test["digits"].shape[:2]
    assert overlap.shape == test["sequences"].shape[:2]
    assert overlap.any() and not overlap.all()  # both cases are exercised

    # a white square drawn alone for each digit: its support is the digit's box
    square = np.full((n, 1, 28, 28), 255, dtype=np.uint8)
    boxes = [render(square, lat[:, :, [d]]) > 0 for d in range(n_digits)]
    assert (boxes[0] & boxes[1]).any(axis=(2, 3)).T.tolist() == overlap.tolist()

    # the digits, drawn alone: ink can only meet inside crossing boxes, and
    # apart from crossings a frame is exactly the sum of its digits
    alone = [render(test["digits"][:, [d]], lat[:, :, [d]]) for d in range(n_digits)]
    ink_meets = ((alone[0] > 0) & (alone[1] > 0)).any(axis=(2, 3)).T  # (T, N)
    assert not (ink_meets & ~overlap).any()
    summed = (alone[0].astype(np.int64) + alone[1]).transpose(1, 0, 2, 3)
    apart = ~overlap
    np.testing.assert_array_equal(test["sequences"][apart], summed[apart])
