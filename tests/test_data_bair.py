"""BAIR: TFRecords in the real format -> arrays, split, clips, test set, download."""
import io
import tarfile
import time

import numpy as np
import pytest
import torch
from helpers import dead_url
from test_tfrecord import encode_example, frame_record, write_tfrecord

from srvp.cli import data as cli
from srvp.config import PRESETS
from srvp.data import bair
from srvp.data.common import split_indices
from srvp.data.registry import test_batches as make_test_batches
from srvp.data.registry import training_sources
from srvp.data.tfrecord import TFRecordError
from srvp.data.video_io import ArchiveError, DownloadError


def synthetic_video(k, rng):
    """(30, 64, 64, 3) uint8 random frames whose first pixel says (k, t)."""
    video = rng.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    video[:, 0, 0, 0], video[:, 0, 0, 1] = k, np.arange(30)
    return video


def example(video, encode=None):
    """A softmotion30_44k Example: both cameras, actions and end-effector positions."""
    encode = encode or (lambda frame: frame.tobytes())
    features = {}
    for t, frame in enumerate(video):
        features[f"{t}/action"] = np.float32([0.1, -0.2, 0.3, 0.0])
        features[f"{t}/endeffector_pos"] = np.float32([0.5, 0.6, 0.7])
        features[f"{t}/image_main/encoded"] = [frame[::-1].tobytes()]
        features[f"{t}/image_aux1/encoded"] = [encode(frame)]
    return encode_example(features)


def write_split(root, split, counts, first=0):
    """softmotion30_44k/<split>/traj_<a>_to_<b>.tfrecords; return the videos."""
    folder = root / "softmotion30_44k" / split
    folder.mkdir(parents=True, exist_ok=True)
    rng, videos, k = np.random.default_rng(first), [], first
    for count in counts:
        batch = [synthetic_video(k + i, rng) for i in range(count)]
        write_tfrecord(folder / f"traj_{k}_to_{k + count - 1}.tfrecords",
                       [example(v) for v in batch])
        videos += batch
        k += count
    return videos


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bair")
    train = write_split(root, "train", [3, 4, 2])
    test = write_split(root, "test", [3], first=100)
    return root, train, test


@pytest.fixture(scope="module")
def converted(dataset):
    root, train, test = dataset
    info = bair.convert_bair(root, progress=False)
    return root, train, test, info


# --- conversion ------------------------------------------------------------------
def test_convert_keeps_frames_and_official_order(converted):
    root, train, test, info = converted
    assert info["train"]["videos"] == 9 and info["train"]["files"] == 3
    assert info["test"]["videos"] == 3
    files = sorted(p.name for p in (root / "processed" / "train").iterdir())
    assert files == ["traj_0_to_2.npy", "traj_3_to_6.npy", "traj_7_to_8.npy"]
    arrays = np.concatenate([np.load(root / "processed" / "train" / f) for f in files])
    assert arrays.shape == (9, 30, 64, 64, 3) and arrays.dtype == np.uint8
    np.testing.assert_array_equal(arrays, np.stack(train))


def test_jpeg_frames_are_decoded_too(tmp_path):
    image_cls = pytest.importorskip("PIL.Image")

    def jpeg(frame):
        buffer = io.BytesIO()
        image_cls.fromarray(frame).save(buffer, format="JPEG", quality=95)
        return buffer.getvalue()

    ramp = np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None]
    video = np.tile(ramp, (30, 64, 1, 3))
    write_tfrecord(tmp_path / "a.tfrecords", [example(video, encode=jpeg)])
    decoded = bair.read_videos(tmp_path / "a.tfrecords")
    assert decoded.shape == (1, 30, 64, 64, 3)
    assert np.abs(decoded.astype(int) - video).max() <= 8


def _convert_fails(root, match):
    with pytest.raises(TFRecordError, match=match):
        bair.convert_bair(root, splits=("train",), progress=False)
    assert not (root / "processed" / "train").exists()


def test_corrupt_or_truncated_records_leave_nothing(tmp_path):
    write_split(tmp_path, "train", [2, 2])
    path = tmp_path / "softmotion30_44k/train/traj_2_to_3.tfrecords"
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    _convert_fails(tmp_path, "traj_2_to_3.tfrecords: corrupt record data")
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data[:-100]))
    _convert_fails(tmp_path, "truncated record")


def test_missing_frames_and_folders_are_reported(tmp_path):
    folder = tmp_path / "softmotion30_44k" / "train"
    folder.mkdir(parents=True)
    video = synthetic_video(0, np.random.default_rng(0))
    features = {f"{t}/image_aux1/encoded": [video[t].tobytes()] for t in range(29)}
    (folder / "x.tfrecords").write_bytes(frame_record(encode_example(features)))
    _convert_fails(tmp_path, "29/image_aux1/encoded")
    with pytest.raises(FileNotFoundError, match="softmotion30_44k"):
        bair.convert_bair(tmp_path / "nowhere", progress=False)


# --- split, training clips, test set -----------------------------------------------
def test_split_and_training_clips(converted):
    root, train, _, _ = converted
    source = bair.Bair.from_dir(root, "train")
    val = bair.Bair.from_dir(root, "val")
    assert len(source) == int(0.95 * 9) and len(val) == 1
    (val_id,) = split_indices(9, "val")
    np.testing.assert_array_equal(val.videos[0], train[val_id])
    clips = source.generate(16, rng=np.random.default_rng(0))
    assert clips.shape == (16, 12, 3, 64, 64) and clips.dtype == np.uint8
    for clip in clips:
        k, t0 = clip[0, 0, 0, 0], clip[0, 1, 0, 0]
        assert k != val_id
        np.testing.assert_array_equal(clip, train[k][t0:t0 + 12].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(clips, source.generate(16, np.random.default_rng(0)))


def test_make_sources_and_test_batches(converted):
    root, _, test, _ = converted
    train, val = training_sources(PRESETS["bair"], str(root))
    assert train.generate(2).shape == (2, 12, 3, 64, 64)
    assert val.generate(2).shape == (2, 12, 3, 64, 64)
    ds = bair.BairTestSet(root)
    assert len(ds) == 3 and ds.seq_len == 30
    item = ds[2]
    assert item.dtype == torch.uint8
    np.testing.assert_array_equal(item.numpy(), test[2].transpose(0, 3, 1, 2))
    ds.seq_len = 5
    assert ds[0].shape == (5, 3, 64, 64)
    batches = list(make_test_batches(PRESETS["bair"], root, 30, 2))
    assert [b.shape for b in batches] == [(30, 2, 3, 64, 64), (30, 1, 3, 64, 64)]


def test_test_set_with_wrong_shapes_is_rejected(tmp_path):
    folder = tmp_path / "processed" / "test"
    folder.mkdir(parents=True)
    np.save(folder / "a.npy", np.zeros((2, 30, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="expected uint8"):
        bair.BairTestSet(tmp_path)


# --- download and extraction -------------------------------------------------------
def _tar(path, files):
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_extract_good_and_truncated_archives(tmp_path):
    good = tmp_path / bair.ARCHIVE
    _tar(good, {"softmotion30_44k/train/a.tfrecords": b"x" * 3000,
                "softmotion30_44k/test/b.tfrecords": b"y" * 100})
    folder = bair.download_bair(tmp_path, keep_archive=True, progress=False)
    assert (folder / "train" / "a.tfrecords").read_bytes() == b"x" * 3000
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / bair.ARCHIVE).write_bytes(good.read_bytes()[:1500])
    with pytest.raises(ArchiveError, match="truncated or corrupt.*removed"):
        bair.download_bair(bad, progress=False)
    assert not (bad / "softmotion30_44k").exists()
    assert not (bad / bair.ARCHIVE).exists()  # not kept, to fail again next time
    good.unlink()  # extracted already: kept, without any request
    assert bair.download_bair(tmp_path, url=dead_url(), progress=False) == folder


@pytest.mark.parametrize("name", ["softmotion30_44k/../../evil.tfrecords",
                                  "/softmotion30_44k/evil.tfrecords"])
def test_a_member_outside_the_folder_is_refused(tmp_path, name):
    """A tar member whose path leaves the target folder stops the extraction,
    with nothing written (the check shared with the released models' archives)."""
    tar = tmp_path / bair.ARCHIVE
    _tar(tar, {"softmotion30_44k/train/a.tfrecords": b"x" * 100, name: b"evil"})
    with pytest.raises(ArchiveError, match="would be written outside"):
        bair.extract_bair(tar, tmp_path / "out")
    assert not (tmp_path / "out" / "softmotion30_44k").exists()
    assert not list(tmp_path.rglob("evil.tfrecords"))


def test_download_fails_fast_and_clearly_offline(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="cannot download"):
        bair.download_bair(tmp_path, url="http://127.0.0.1:9/bair.tar", timeout=5,
                           progress=False)
    assert time.perf_counter() - start < 10
    assert not list(tmp_path.iterdir())


def test_cli(dataset, tmp_path, capsys):
    root = dataset[0]
    assert cli.main(["data", "bair-convert", "--data-dir", str(root), "--out",
                     str(tmp_path), "--splits", "test", "--no-progress"]) == 0
    assert "3 videos of 30 frames from 1 files" in capsys.readouterr().out
    assert cli.main(["data", "bair-convert", "--data-dir", str(root), "--out",
                     str(tmp_path), "--splits", "test", "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err
