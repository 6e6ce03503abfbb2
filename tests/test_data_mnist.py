"""MNIST IDX reading, validation, directory resolution and (offline) download.

Most tests read the small MNIST-format source of ``tiny_mnist_dir``; the
``mnist_dir`` ones check facts about the real files.
"""
import gzip
import tracemalloc
import zlib

import numpy as np
import pytest
from fake_mnist import TINY_MNIST_SIZES, write_mnist_split

from srvp.data import mnist_idx as mnist

N_TEST = TINY_MNIST_SIZES["test"]


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


def test_published_md5_of_the_real_test_files(mnist_dir):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert mnist.md5sum(mnist_dir / name) == mnist.MD5[name], name


def test_tiny_source_is_valid_mnist(tiny_mnist_dir):
    """The stand-in digits of the other tests: valid splits, inked strokes on
    a black background, all distinct, balanced labels."""
    for split, n in TINY_MNIST_SIZES.items():
        images, labels = mnist.load_mnist(tiny_mnist_dir, split=split)
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert np.bincount(labels).tolist() == [n // 10] * 10
        assert images.max() == 255 and (images[:, :3] == 0).all()
        ink = (images > 0).mean(axis=(1, 2))
        assert ink.min() > 0.02 and ink.max() < 0.6
        assert len(np.unique(images.reshape(n, -1), axis=0)) == n


def test_train_falls_back_to_5k_subset(tiny_mnist_dir, tmp_path):
    images, labels = mnist.load_mnist(tiny_mnist_dir, split="test")
    # only the offline subset is present here: "train" must find train5k-*
    write_mnist_split(tmp_path, "train5k", images[:50], labels[:50])
    got, got_labels = mnist.load_mnist(tmp_path, split="train")
    np.testing.assert_array_equal(got, images[:50])
    np.testing.assert_array_equal(got_labels, labels[:50])
    assert len(mnist.load_mnist(tmp_path, split="train5k")[0]) == 50
    # the full training files win when both are present
    write_mnist_split(tmp_path, "train", images[:70], labels[:70])
    assert len(mnist.load_mnist(tmp_path, split="train")[0]) == 70
    assert len(mnist.load_mnist(tmp_path, split="train5k")[0]) == 50


def test_raw_and_gzip_files_agree(tiny_mnist_dir, tmp_path):
    for name in ("t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        gz = tiny_mnist_dir / f"{name}.gz"
        raw = tmp_path / name
        raw.write_bytes(gzip.decompress(gz.read_bytes()))
        assert raw.read_bytes()[:4] != gz.read_bytes()[:4]  # really two formats
        np.testing.assert_array_equal(mnist.read_idx(raw), mnist.read_idx(gz))
    # a folder holding only the raw files loads the same split
    np.testing.assert_array_equal(mnist.load_mnist(tmp_path, "test")[0],
                                  mnist.load_mnist(tiny_mnist_dir, "test")[0])


def test_env_var_is_used(tiny_mnist_dir, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(tiny_mnist_dir))
    images, _ = mnist.load_mnist(split="test")
    assert len(images) == N_TEST


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


def test_truncated_gzip_stream(tmp_path, tiny_mnist_dir):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    whole = (tiny_mnist_dir / path.name).read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(mnist.IDXFormatError, match="t10k-labels.*gzip"):
        mnist.read_idx(path)


def test_a_gzip_bomb_is_refused_without_filling_the_memory(tmp_path):
    """A header announcing 10 images, then 64 MiB of zeros (in 290 kB of gzip):
    read_idx decompresses what the header declares plus one byte, not more."""
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in
                                                (10, 28, 28))
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: the gzip format
    block = bytes(1 << 20)
    body = packer.compress(header) + b"".join(packer.compress(block)
                                              for _ in range(64))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(body + packer.flush())
    tracemalloc.start()
    with pytest.raises(mnist.IDXFormatError, match="more bytes than the 7856"):
        mnist.read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 << 20


def test_an_absurd_declared_size_is_refused(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"".join(
        d.to_bytes(4, "big") for d in (2 ** 31, 28, 28)))
    with pytest.raises(mnist.IDXFormatError, match="huge: the header declares"):
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


def _trust_tiny_files(monkeypatch, folder):
    """Make the tiny files' checksums the expected ones, as if published."""
    for path in folder.glob("*.gz"):
        monkeypatch.setitem(mnist.MD5, path.name, mnist.md5sum(path))


def test_download_from_a_mirror_checks_md5(tiny_mnist_dir, tmp_path, monkeypatch):
    _trust_tiny_files(monkeypatch, tiny_mnist_dir)
    mirror = tiny_mnist_dir.as_uri() + "/"  # a local mirror holding the test files
    out = tmp_path / "out"
    paths = mnist.download_mnist(out, splits=("test",), mirrors=(mirror,))
    assert [p.name for p in paths] == ["t10k-images-idx3-ubyte.gz",
                                       "t10k-labels-idx1-ubyte.gz"]
    assert all(mnist.md5sum(p) == mnist.MD5[p.name] for p in paths)
    assert all(p.read_bytes() == (tiny_mnist_dir / p.name).read_bytes() for p in paths)
    assert sorted(f.name for f in out.iterdir()) == sorted(p.name for p in paths)


def test_download_rejects_bad_checksum_atomically(tmp_path):
    bad = tmp_path / "mirror"
    bad.mkdir()
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(b"not mnist")
    out = tmp_path / "out"
    with pytest.raises(mnist.MNISTNotFoundError, match="MD5 mismatch"):
        mnist.download_mnist(out, splits=("test",), mirrors=(bad.as_uri() + "/",))
    assert not out.exists()  # no partial file, nor the folder made for it


def test_offline_download_error(tmp_path):
    unreachable = ("http://127.0.0.1:9/mnist/",)
    with pytest.raises(mnist.MNISTNotFoundError, match="Offline.*SRVP_MNIST_DIR"):
        mnist.download_mnist(tmp_path, splits=("test",), mirrors=unreachable,
                             timeout=2)


def test_load_with_download_flag(tiny_mnist_dir, tmp_path, monkeypatch):
    _trust_tiny_files(monkeypatch, tiny_mnist_dir)
    monkeypatch.setattr(mnist, "MIRRORS", (tiny_mnist_dir.as_uri() + "/",))
    images, labels = mnist.load_mnist(tmp_path, split="test", download=True)
    assert images.shape == (N_TEST, 28, 28) and labels.shape == (N_TEST,)
    np.testing.assert_array_equal(
        images, mnist.load_mnist(tiny_mnist_dir, split="test")[0])
