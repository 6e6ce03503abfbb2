"""Human3.6M: conversion of real MP4 files, split, subsampled clips, exact test set."""
import numpy as np
import pytest
import torch

from srvp.cli import data as cli
from srvp.config import PRESETS
from srvp.data import human
from srvp.data.common import InvalidTestSetError, split_indices
from srvp.data.registry import test_batches as make_test_batches
from srvp.data.registry import training_sources
from srvp.data.video_io import VideoDecodeError, crop_resize, decode_video

TEST_VIDEOS = [(9, "Walking.54138969"), (9, "Eating 1.55011271"),
               (11, "Sitting.60457274"), (11, "Walking 1.54138969"),
               (9, "Directions.58860488"), (11, "Greeting.55011271")]
# (filename, frame) of the first clips written by the official
# preprocessing/human/make_test_set.py (defaults: 53 frames, subsampling 8, seed
# 42) run on official-format .npz files of the videos of `synthetic_video`.
OFFICIAL_FIRST_CLIPS = [
    ("Directions.58860488", 92), ("Walking 1.54138969", 71), ("Eating 1.55011271", 20),
    ("Sitting.60457274", 74), ("Walking 1.54138969", 87), ("Eating 1.55011271", 35),
    ("Walking 1.54138969", 21), ("Eating 1.55011271", 1), ("Directions.58860488", 37),
    ("Sitting.60457274", 63), ("Directions.58860488", 20), ("Greeting.55011271", 57)]


def synthetic_video(k, size=16, min_len=417):
    """(T, size, size, 3) uint8; channels: t % 256, t // 256 and k."""
    length = min_len + (k * 37) % 200
    video = np.zeros((length, size, size, 3), np.uint8)
    t = np.arange(length)
    video[..., 0] = (t % 256)[:, None, None]
    video[..., 1] = (t // 256)[:, None, None]
    video[..., 2] = k
    return video


def frame_ids(frames, channels_last=False):
    """Original index of each frame of (T, C, H, W) or (T, H, W, C) uint8 frames."""
    if channels_last:
        frames = np.moveaxis(frames, -1, 1)
    return frames[:, 0, 0, 0].astype(int) + 256 * frames[:, 1, 0, 0].astype(int)


def write_converted(folder, names, official=False, **kwargs):
    """Converted videos as this package (.npy) or the official code (.npz) writes."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (subject, name) in enumerate(names):
        video = synthetic_video(k, **kwargs)
        if official:
            np.savez(folder / f"S{subject}-{name}", image=video, filename=name,
                     subject=subject)
        else:
            np.save(folder / f"S{subject}-{name}.npy", video)
    return folder


def write_mp4(path, n_frames, width=1000, height=1002, seed=0):
    """An MPEG-4 .mp4 file (Human3.6M size) of smooth random colour frames."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=50)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(n_frames):
            small = rng.integers(0, 256, (height // 100 + 1, width // 100 + 1, 3))
            frame = np.kron(small, np.ones((100, 100, 1)))[:height, :width]
            image = av.VideoFrame.from_ndarray(frame.astype(np.uint8), "rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    """S<k>/Videos/ with one short MP4 per subject, plus a skipped _ALL file."""
    root = tmp_path_factory.mktemp("human_raw")
    for k, subject in enumerate((1, 5, 6, 7, 8, 9, 11)):
        videos = root / f"S{subject}" / "Videos"
        videos.mkdir(parents=True)
        write_mp4(videos / "Walking.54138969.mp4", 3 + k % 2, seed=k)
    write_mp4(root / "S1/Videos/_ALL.54138969.mp4", 2)
    return root


# --- conversion ------------------------------------------------------------------
def test_convert_crops_then_resizes_and_keeps_every_frame(raw_dir, tmp_path):
    info = human.convert_human(raw_dir, tmp_path, progress=False)
    assert info["train"]["videos"] == 5 and info["test"]["videos"] == 2
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == [
        "S11-Walking.54138969.npy", "S9-Walking.54138969.npy"]
    assert not (tmp_path / "train" / "S1-_ALL.54138969.npy").exists()
    video = np.load(tmp_path / "train" / "S1-Walking.54138969.npy")
    assert video.shape == (3, 64, 64, 3) and video.dtype == np.uint8
    full = decode_video(raw_dir / "S1/Videos/Walking.54138969.mp4")
    assert full.shape == (3, 1002, 1000, 3)
    reference = np.stack([crop_resize(f, (100, 100, 900, 900), 64) for f in full])
    np.testing.assert_array_equal(video, reference)


def test_convert_errors_leave_nothing_behind(raw_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="S1"):
        human.convert_human(tmp_path, progress=False)
    bad = tmp_path / "raw"
    for subject in (1, 5, 6, 7, 8):
        (bad / f"S{subject}" / "Videos").mkdir(parents=True)
    (bad / "S6/Videos/Eating.1.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(VideoDecodeError, match="Eating.1.mp4"):
        human.convert_human(bad, folds=("train",), progress=False)
    assert not (bad / "train").exists()


# --- split and training clips ----------------------------------------------------
TRAIN_NAMES = [(s, f"Action{i}.{s}") for s in (1, 5, 6, 7, 8) for i in range(4)]


@pytest.fixture
def train_dir(tmp_path):
    folder = write_converted(tmp_path / "train", TRAIN_NAMES, min_len=100)
    np.save(folder / "S8-Short.npy", synthetic_video(99, min_len=10)[:10])
    return tmp_path


def test_split_and_subsampled_clips(train_dir):
    paths = human.video_files(train_dir / "train")
    train = human.Human.from_dir(train_dir, "train")
    val = human.Human.from_dir(train_dir, "val")
    assert len(train) == int(0.95 * 21) and len(val) == 21 - len(train)
    assert val.videos.paths == [paths[i] for i in split_indices(21, "val")]
    source = human.Human.from_dir(train_dir, "all", seq_len=16)
    clips = source.generate(32, rng=np.random.default_rng(0))
    assert clips.shape == (32, 16, 3, 16, 16) and clips.dtype == np.uint8
    np.testing.assert_array_equal(clips, source.generate(32, np.random.default_rng(0)))
    for clip in clips:
        assert (np.diff(frame_ids(clip)) == 8).all()  # one frame in 8
        assert clip[0, 2, 0, 0] != 99  # the 10-frame video is never drawn
    in_memory = human.Human.from_dir(train_dir, "all", seq_len=16, mmap=False)
    np.testing.assert_array_equal(in_memory.generate(4, np.random.default_rng(1)),
                                  source.generate(4, np.random.default_rng(1)))


def test_official_npz_files_are_read_too(tmp_path):
    write_converted(tmp_path / "train", TRAIN_NAMES[:3], official=True, min_len=130)
    source = human.Human.from_dir(tmp_path, "all", seq_len=16)
    assert source.generate(2).shape == (2, 16, 3, 16, 16)


def test_make_sources_for_human(tmp_path):
    write_converted(tmp_path / "train", TRAIN_NAMES)
    train, val = training_sources(PRESETS["human"], str(tmp_path))
    assert train.stride == 8 and train.generate(2).shape == (2, 16, 3, 16, 16)
    assert val.generate(1).shape == (1, 53, 3, 16, 16)


# --- test set ------------------------------------------------------------------------
@pytest.fixture
def human_test_dir(tmp_path):
    write_converted(tmp_path / "test", TEST_VIDEOS)
    return tmp_path


def test_test_set_draws_the_official_clips(human_test_dir):
    folder = human.make_test_set(human_test_dir, size=12, progress=False)
    assert folder == human_test_dir / "test_set_53_8"
    clips = [np.load(folder / f"test_{i}.npz") for i in range(12)]
    got = [(str(c["filename"]), int(c["frame"])) for c in clips]
    assert got == OFFICIAL_FIRST_CLIPS
    first = clips[0]
    assert set(first.files) == {"image", "filename", "subject", "frame"}
    assert first["image"].shape == (417, 16, 16, 3) and int(first["subject"]) == 9
    assert (frame_ids(first["image"], True) == np.arange(92, 92 + 417)).all()


def test_test_set_dataset_subsamples_and_keeps_official_order(human_test_dir):
    human.make_test_set(human_test_dir, size=12, progress=False)
    ds = human.HumanTestSet(human_test_dir)
    assert len(ds) == 12 and ds.seq_len == 53
    assert [p.stem for p in ds.files[:4]] == ["test_0", "test_1", "test_10", "test_11"]
    video = ds[0]
    assert video.shape == (53, 3, 16, 16) and video.dtype == torch.uint8
    assert (frame_ids(video.numpy()) == 92 + 8 * np.arange(53)).all()
    every = human.HumanTestSet(human_test_dir / "test_set_53_8", subsampling=1)
    assert every.seq_len == 417 and every[0].shape == (417, 3, 16, 16)
    batches = list(make_test_batches(PRESETS["human"], human_test_dir, 53, 5,
                                     n_videos=7))
    assert [b.shape for b in batches] == [(53, 5, 3, 16, 16), (53, 2, 3, 16, 16)]


def test_test_set_errors(human_test_dir, tmp_path):
    write_converted(tmp_path / "short" / "test", TEST_VIDEOS[:2], min_len=100)
    with pytest.raises(ValueError, match="fewer than"):
        human.make_test_set(tmp_path / "short", size=3, progress=False)
    assert not (tmp_path / "short" / "test_set_53_8").exists()
    with pytest.raises(FileNotFoundError, match="human-testset"):
        human.HumanTestSet(tmp_path / "short")
    folder = human.make_test_set(human_test_dir, size=3, progress=False)
    np.savez(folder / "test_3.npz", image=np.zeros((417, 16, 16), np.uint8))
    with pytest.raises(InvalidTestSetError, match="test_3"):
        human.HumanTestSet(folder)
    with pytest.raises(FileExistsError):
        human.make_test_set(human_test_dir, size=3, progress=False)


def test_cli(human_test_dir, capsys):
    assert cli.main(["data", "human-testset", "--data-dir", str(human_test_dir),
                     "--size", "3", "--no-progress"]) == 0
    assert "3 clips of 53 frames" in capsys.readouterr().out
    assert cli.main(["data", "human-convert", "--data-dir", str(human_test_dir / "no"),
                     "--no-progress"]) == 1
    assert "Videos" in capsys.readouterr().err
