"""MNIST IDX reading, validation, directory resolution and (offline) download."""
import gzip
import shutil

import numpy as np
import pytest

from srvp.data import mnist_idx as mnist


def _write_idx(path, array, magic_type=0x08, compress=False):
    """Write ``array`` (uint8) as an IDX file, optionally gzip-compressed."""
    header = bytes([0, 0, magic_type, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_real_test_split(mnist_dir):
    images, labels = mnist.load_mnist(mnist_dir, split="test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0


def test_train_falls_back_to_5k_subset(mnist_dir, tmp_path):
    # only the offline subset is present here: "train" must find train5k-*
    for name in ("train5k-images-idx3-ubyte.gz", "train5k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    images, labels = mnist.load_mnist(tmp_path, split="train")
    assert images.shape == (5_000, 28, 28) and labels.shape == (5_000,)
    assert np.bincount(labels).tolist() == [500] * 10


def test_raw_and_gzip_files_agree(mnist_dir, tmp_path):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((mnist_dir / f"{raw.name}.gz").read_bytes()))
    np.testing.assert_array_equal(mnist.read_idx(raw),
                                  mnist.read_idx(mnist_dir / f"{raw.name}.gz"))


def test_env_var_is_used(mnist_dir, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(mnist_dir))
    images, _ = mnist.load_mnist(split="test")
    assert len(images) == 10_000


@pytest.mark.parametrize("compress", [False, True])
def test_synthetic_roundtrip(tmp_path, compress):
    array = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = _write_idx(tmp_path / "x.idx", array, compress=compress)
    out = mnist.read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_wrong_magic_names_the_file(tmp_path):
    path = _write_idx(tmp_path / "bad-magic", np.zeros((2, 28, 28), np.uint8))
    data = bytearray(path.read_bytes())
    data[0] = 0x42
    path.write_bytes(bytes(data))
    with pytest.raises(mnist.IDXFormatError, match="bad-magic.*magic"):
        mnist.read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file_names_the_file(tmp_path, compress):
    path = _write_idx(tmp_path / "short", np.ones((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])  # drop the last 100 pixels
    if compress:
        path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(mnist.IDXFormatError, match="short.*truncated"):
        mnist.read_idx(path)


def test_truncated_gzip_stream(tmp_path, mnist_dir):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes((mnist_dir / path.name).read_bytes()[:500])
    with pytest.raises(mnist.IDXFormatError, match="t10k-labels.*gzip"):
        mnist.read_idx(path)


def test_images_with_wrong_dims_are_rejected(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 27), np.uint8))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(mnist.IDXFormatError, match=r"\(N, 28, 28\)"):
        mnist.load_mnist(tmp_path, split="test")


def test_count_mismatch_is_rejected(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(mnist.IDXFormatError, match="3 images.*4 labels"):
        mnist.load_mnist(tmp_path, split="test")


def test_missing_files_message(tmp_path):
    with pytest.raises(mnist.MNISTNotFoundError) as err:
        mnist.load_mnist(tmp_path, split="test")
    message = str(err.value)
    for expected in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     str(tmp_path), mnist.ENV_VAR):
        assert expected in message


def test_no_directory_given(monkeypatch):
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    with pytest.raises(mnist.MNISTNotFoundError, match=mnist.ENV_VAR):
        mnist.load_mnist(split="test")


def test_download_from_a_mirror_checks_md5(mnist_dir, tmp_path):
    mirror = mnist_dir.as_uri() + "/"  # a local mirror holding the test files
    out = tmp_path / "out"
    paths = mnist.download_mnist(out, splits=("test",), mirrors=(mirror,))
    assert [p.name for p in paths] == ["t10k-images-idx3-ubyte.gz",
                                       "t10k-labels-idx1-ubyte.gz"]
    assert all(mnist.md5sum(p) == mnist.MD5[p.name] for p in paths)
    assert sorted(f.name for f in out.iterdir()) == sorted(p.name for p in paths)


def test_download_rejects_bad_checksum_atomically(mnist_dir, tmp_path):
    bad = tmp_path / "mirror"
    bad.mkdir()
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(b"not mnist")
    out = tmp_path / "out"
    with pytest.raises(mnist.MNISTNotFoundError, match="MD5 mismatch"):
        mnist.download_mnist(out, splits=("test",), mirrors=(bad.as_uri() + "/",))
    assert list(out.iterdir()) == []  # no partial or temporary file left


def test_offline_download_error(tmp_path):
    unreachable = ("http://127.0.0.1:9/mnist/",)
    with pytest.raises(mnist.MNISTNotFoundError, match="Offline.*SRVP_MNIST_DIR"):
        mnist.download_mnist(tmp_path, splits=("test",), mirrors=unreachable,
                             timeout=2)


def test_load_with_download_flag(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", (mnist_dir.as_uri() + "/",))
    images, labels = mnist.load_mnist(tmp_path, split="test", download=True)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
