"""Moving MNIST: on-the-fly generator, collate, exact test sets and the CLI."""
import argparse
import hashlib

import numpy as np
import pytest
import torch

from srvp.cli import data as cli
from srvp.data import mnist_idx as mnist_io
from srvp.data import moving_mnist as mmnist
from srvp.data import moving_mnist_testset as testset
from srvp.data.common import InvalidTestSetError, split_indices

# SHA-256 of the raw bytes of each array, obtained by running the official script
# preprocessing/mmnist/make_test_set.py (edouardelasalles/srvp, with only its
# torchvision input loading replaced by a reader of the same MNIST test IDX files):
#   stochastic:    --seq_len 25                  (all 5,000 videos)
#   deterministic: --seq_len 100 --deterministic (first 200 videos of the output)
OFFICIAL_STOCHASTIC_25 = {
    "sequences": "8783c4a2df402a3ab7e01f9f8bd633131562dfe93a33f02d88d64e1481e2bf00",
    "latents": "d578fb7d35be0cf6be4b596b26e0df86a58552b8d66d8b27d46b24fffe91804a",
    "labels": "7e387e07d121771f53e67d5d38994eca7c4f1692cf4124f8edd55ea088e81daf",
    "digits": "b4e23e71b2fbcf4e9ecfef6857e15fd7d8b4d3e80f021d285256d4a889ff8a73",
}
OFFICIAL_DETERMINISTIC_100_FIRST_200 = {
    "sequences": "386c10d404c34fb6a88d8fd66a3d29aa73beba795645e0e0ec068674b970a97f",
    "latents": "6239f143f7e0c4f3fe851bc206ef921937c1b384adba764fc5e83b164fbbe753",
    "labels": "a7eb422f2a07d66932342d83292ff9a6bf89ed4ee15662056d75675e5469211a",
    "digits": "87e7480ff392aaf9c5c21f89ba3152777c7b5bcaceccb68a50ff6c5a4ef1270a",
}
OFFICIAL_DETERMINISTIC_100_SEQUENCES = (
    "ca3b0a61364894a9b832c4094ce969e59550df5596ba90662e16ba9ed405f132")


def _sha(array):
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


@pytest.fixture(scope="module")
def digits():
    """Random 28x28 'digits' (no files needed for the generator tests)."""
    return np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)


# --- on-the-fly generator --------------------------------------------------------

def test_item_shape_dtype_and_range(digits):
    ds = mmnist.MovingMNIST(digits, seed=0)
    video = ds[0]
    assert video.shape == (15, 1, 64, 64) and video.dtype == torch.uint8
    assert len(ds) == 500_000
    ds.change_seq_len(100)
    assert ds[3].shape == (100, 1, 64, 64)


def test_digits_stay_inside_and_are_drawn_where_the_latents_say(digits):
    ds = mmnist.MovingMNIST(digits, seq_len=30, seed=1)
    videos, latents = ds.generate(64, return_latents=True)
    assert videos.shape == (64, 30, 1, 64, 64) and latents.shape == (64, 30, 2, 4)
    assert latents[..., :2].min() >= 0 and latents[..., :2].max() <= 36
    assert np.abs(latents[..., 2:]).max() <= 4
    inside = np.zeros(videos.shape, dtype=bool)
    for i, t, d in np.ndindex(64, 30, 2):
        r, c = latents[i, t, d, :2]
        inside[i, t, 0, r:r + 28, c:c + 28] = True
    assert videos[~inside].max() == 0


def test_render_adds_and_clips_like_the_official_loop(digits):
    rng = np.random.default_rng(2)
    imgs = digits[rng.integers(0, 50, (8, 2))]
    latents = rng.integers(0, 37, (8, 5, 2, 4))
    expected = np.zeros((8, 5, 64, 64), np.float32)
    for i, t, d in np.ndindex(8, 5, 2):
        r, c = latents[i, t, d, :2]
        expected[i, t, r:r + 28, c:c + 28] += imgs[i, d]
    expected = np.minimum(expected, 255).astype(np.uint8)
    np.testing.assert_array_equal(mmnist.render(imgs, latents), expected)


def test_deterministic_matches_the_official_rule_exactly():
    # deterministic bounces use no randomness: the vectorised simulation must be
    # bit-identical to the one-digit-at-a-time official procedure
    rng = np.random.default_rng(3)
    n = 300
    init = np.stack([rng.integers(0, 37, n), rng.integers(0, 37, n),
                     rng.integers(-4, 5, n), rng.integers(-4, 5, n)], axis=1)
    vec = mmnist.sample_trajectories(rng, n, 60, deterministic=True, init=init)
    ref = np.stack([testset.official_trajectory(None, 60, deterministic=True, init=i)
                    for i in init])
    np.testing.assert_array_equal(vec, ref)


def test_deterministic_conserves_speed_per_axis():
    traj = mmnist.sample_trajectories(np.random.default_rng(4), 500, 100,
                                      deterministic=True)
    speed = np.abs(traj[..., 2:])
    assert (speed == speed[:, :1]).all()
    assert (np.sign(traj[:, 1:, 2:]) != np.sign(traj[:, :-1, 2:])).any()  # bounced


def test_stochastic_bounce_redraws_velocity_pointing_inward():
    n = 2000
    init = np.tile([[0, 10, -3, 2]], (n, 1))  # leaves through the top wall at once
    traj = mmnist.sample_trajectories(np.random.default_rng(5), n, 2, init=init)
    d_row, d_col = traj[:, 1, 2], traj[:, 1, 3]
    assert (d_row >= 0).all()  # the normal component points back inside
    assert set(np.unique(d_row)) == set(range(5))  # |d_row| re-drawn in 0..4
    assert set(np.unique(d_col)) == set(range(-4, 5))  # tangential one re-drawn too
    # deterministic: only the normal component is reflected
    det = mmnist.sample_trajectories(None, n, 2, deterministic=True, init=init)
    assert (det[:, 1, 2:] == [3, 2]).all()


def test_stochastic_distribution_matches_the_official_procedure():
    n, steps = 3000, 40
    vec = mmnist.sample_trajectories(np.random.default_rng(6), n, steps)
    legacy = np.random.RandomState(6)
    ref = np.stack([testset.official_trajectory(legacy, steps) for _ in range(n)])
    for k, (low, high) in enumerate([(0, 36), (0, 36), (-4, 4), (-4, 4)]):
        hist = [np.bincount(a[:, :, k].ravel() - low, minlength=high - low + 1)
                / a[:, :, k].size for a in (vec, ref)]
        assert np.abs(hist[0] - hist[1]).sum() < 0.05, k  # total variation x2


def test_seeding_is_reproducible(digits):
    a = mmnist.MovingMNIST(digits, seed=7, chunk_size=4)
    b = mmnist.MovingMNIST(digits, seed=7, chunk_size=4)
    c = mmnist.MovingMNIST(digits, seed=8)
    first = torch.stack([a[i] for i in range(4)])
    assert torch.equal(first, torch.stack([b[i] for i in range(4)]))
    assert not torch.equal(first, torch.stack([c[i] for i in range(4)]))
    a.reseed(7)
    assert torch.equal(first, torch.stack([a[i] for i in range(4)]))


def _loader_batches(dataset, seed):
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                         collate_fn=mmnist.collate_fn)
    it = iter(loader)
    return [next(it) for _ in range(2)]  # one batch from each worker


def test_workers_get_distinct_reproducible_streams(digits):
    ds = mmnist.MovingMNIST(digits, seq_len=3, chunk_size=8)
    ds[0]  # the main process' generator and buffer must not leak into workers
    run1, run2 = _loader_batches(ds, 0), _loader_batches(ds, 0)
    assert all(torch.equal(x, y) for x, y in zip(run1, run2))
    assert not torch.equal(run1[0], run1[1])
    assert not torch.equal(run1[0], _loader_batches(ds, 1)[0])


def test_collate_shape_and_scale(digits):
    ds = mmnist.MovingMNIST(digits, seq_len=6, seed=9)
    items = [ds[i] for i in range(5)]
    batch = mmnist.collate_fn(items)
    assert batch.shape == (6, 5, 1, 64, 64) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1
    torch.testing.assert_close(batch[:, 2], items[2].float() / 255)
    no_channel = mmnist.collate_fn([x[:, 0].numpy() for x in items])
    assert torch.equal(no_channel, batch)


def test_official_validation_split():
    # restated from the official get_fold: shuffle a list of ids with
    # RandomState(42), keep the first int(0.95 n), preserve the original order
    n = 5000
    ids = list(range(n))
    np.random.RandomState(42).shuffle(ids)
    train_ids = set(ids[:int(0.95 * n)])
    train, val = split_indices(n, "train"), split_indices(n, "val")
    assert train.tolist() == [i for i in range(n) if i in train_ids]
    assert len(train) == 4750 and len(val) == 250
    assert sorted(train.tolist() + val.tolist()) == list(range(n))


def test_from_mnist_folds(tiny_mnist_dir):
    train = mmnist.MovingMNIST.from_mnist(tiny_mnist_dir, fold="train", seed=0)
    val = mmnist.MovingMNIST.from_mnist(tiny_mnist_dir, fold="val", seq_len=25)
    images = mnist_io.load_mnist(tiny_mnist_dir, "train")[0]
    n = len(images)
    np.testing.assert_array_equal(train.digits,
                                  images[split_indices(n, "train")])
    np.testing.assert_array_equal(val.digits, images[split_indices(n, "val")])
    assert len(train.digits) == int(0.95 * n) and len(val.digits) == n - int(0.95 * n)
    assert val[0].shape == (25, 1, 64, 64)


# --- fixed test sets -------------------------------------------------------------

@pytest.fixture()
def mnist_test_digits(mnist_dir):
    """The 10,000 real MNIST test digits and labels (the official sets' hashes
    hold only for them)."""
    return mnist_io.load_mnist(mnist_dir, "test")


def test_stochastic_test_set_is_the_official_one(mnist_test_digits):
    # the full 5,000 x 25 build takes about 2 s on a 2-core CPU
    arrays = testset.build_test_set(*mnist_test_digits, progress=False)
    assert arrays["sequences"].shape == (25, 5000, 64, 64)
    assert arrays["latents"].shape == (25, 5000, 2, 4)
    assert arrays["latents"].dtype == np.int64
    assert {k: _sha(v) for k, v in arrays.items()} == OFFICIAL_STOCHASTIC_25
    assert testset.matches_official(arrays, deterministic=False)


def test_deterministic_test_set_prefix_is_the_official_one(mnist_test_digits):
    # the first 200 videos of the official 100-frame deterministic set (a full
    # build is about 5 s plus 2 GB of memory: see the slow test below)
    arrays = testset.build_test_set(*mnist_test_digits, deterministic=True,
                                    num_videos=200, progress=False)
    assert arrays["sequences"].shape == (100, 200, 64, 64)
    assert {k: _sha(v) for k, v in arrays.items()} == (
        OFFICIAL_DETERMINISTIC_100_FIRST_200)


@pytest.mark.slow
def test_deterministic_test_set_full(mnist_test_digits):
    arrays = testset.build_test_set(*mnist_test_digits, deterministic=True,
                                    progress=False)
    assert _sha(arrays["sequences"]) == OFFICIAL_DETERMINISTIC_100_SEQUENCES


@pytest.fixture()
def small_file(tiny_mnist_dir, tmp_path):
    arrays = testset.build_test_set(*mnist_io.load_mnist(tiny_mnist_dir, "test"),
                                    num_videos=10, progress=False)
    return testset.save_test_set(arrays, tmp_path), arrays


def test_save_and_load(small_file):
    path, arrays = small_file
    assert path.name == "smmnist_test_2digits_64.npz"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp left
    ds = testset.MovingMNISTTestSet(path.parent, seq_len=20)
    assert len(ds) == 10
    video = ds[3]
    assert video.shape == (20, 1, 64, 64) and video.dtype == torch.uint8
    np.testing.assert_array_equal(video[:, 0].numpy(), arrays["sequences"][:20, 3])
    batch = mmnist.collate_fn([ds[i] for i in range(4)])
    assert batch.shape == (20, 4, 1, 64, 64)
    with pytest.raises(ValueError, match="seq_len"):
        ds.change_seq_len(26)


def test_wrong_shapes_are_rejected(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, sequences=np.zeros((25, 64, 64), np.uint8))
    with pytest.raises(InvalidTestSetError, match="bad.npz.*sequences"):
        testset.MovingMNISTTestSet(bad)
    np.savez(bad, sequences=np.zeros((25, 10, 64, 64), np.uint8),
             latents=np.zeros((25, 9, 2, 4), np.int64))
    with pytest.raises(InvalidTestSetError, match="latents"):
        testset.load_test_set(bad)
    np.savez(bad, sequences=np.zeros((25, 10, 64, 64), np.float32))
    with pytest.raises(InvalidTestSetError, match="uint8"):
        testset.load_test_set(bad)
    bad.write_bytes(b"not an npz file")
    with pytest.raises(InvalidTestSetError, match="bad.npz"):
        testset.load_test_set(bad)
    with pytest.raises(FileNotFoundError, match="mmnist-testset"):
        testset.MovingMNISTTestSet(tmp_path / "missing.npz")


# --- command line ----------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(prog="srvp")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize("argv, expected", [
    (["data", "--help"], "mmnist-testset"),
    (["data", "mmnist-testset", "--help"], "--deterministic"),
    (["data", "mnist-download", "--help"], "MD5"),
])
def test_cli_help(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_cli_builds_a_test_set(tiny_mnist_dir, tmp_path, capsys):
    args = _parser().parse_args(
        ["data", "mmnist-testset", "--data-dir", str(tiny_mnist_dir), "--out",
         str(tmp_path), "--deterministic", "--seq-len", "12", "--num-videos", "7",
         "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "mmnist_test_2digits_64.npz" in out and "7 videos of 12 frames" in out
    ds = testset.MovingMNISTTestSet(tmp_path, deterministic=True)
    assert len(ds) == 7 and ds[0].shape == (12, 1, 64, 64)


def test_cli_download(tiny_mnist_dir, tmp_path, monkeypatch, capsys):
    for path in tiny_mnist_dir.glob("t10k-*.gz"):  # the mirror's files are trusted
        monkeypatch.setitem(mnist_io.MD5, path.name, mnist_io.md5sum(path))
    monkeypatch.setattr(mnist_io, "MIRRORS", (tiny_mnist_dir.as_uri() + "/",))
    assert cli.main(["data", "mnist-download", "--out", str(tmp_path),
                     "--split", "test"]) == 0
    assert capsys.readouterr().out.count("ok") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_cli_reports_missing_mnist_without_traceback(tmp_path, capsys):
    status = cli.main(["data", "mmnist-testset", "--data-dir", str(tmp_path),
                       "--out", str(tmp_path / "out")])
    assert status == 1
    assert "t10k-images-idx3-ubyte.gz" in capsys.readouterr().err
