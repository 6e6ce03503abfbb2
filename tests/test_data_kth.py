"""KTH: conversion of real AVI files, official split, clips, exact test set, CLI."""
import hashlib
import time
import zipfile

import numpy as np
import pytest
import torch
from helpers import write_avi

from srvp.cli import data as cli
from srvp.config import PRESETS
from srvp.data import kth
from srvp.data.common import InvalidTestSetError, split_indices
from srvp.data.registry import test_batches as make_test_batches
from srvp.data.registry import training_sources
from srvp.data.video_io import ArchiveError, DownloadError, VideoDecodeError

# Obtained by running the official preprocessing/kth/make_test_set.py (defaults:
# 1,000 clips, 40 frames, seed 42) on PNG folders of the synthetic videos of
# `synthetic_video` (persons 21-25): SHA-256 of its 'sequences' array, and the
# (person, action, scenario, start) of its first clips.
OFFICIAL_SEQUENCES_SHA256 = (
    "8e3e1ce8e9c6f0fdf232cfba9430a56a16adb463900dbf065c69e04408766406")
OFFICIAL_FIRST_CLIPS = [(25, "jogging", 3, 10), (25, "running", 3, 18),
                        (23, "handwaving", 4, 20), (23, "jogging", 2, 20),
                        (24, "handclapping", 2, 5), (24, "handclapping", 1, 0),
                        (22, "jogging", 2, 12), (21, "jogging", 1, 2)]


def synthetic_video(person, action, trial, size=64, min_len=40):
    """(T, size, size) uint8: frame t is filled with t, its first pixels say who."""
    a = kth.CLASSES.index(action)
    length = min_len + (person * 7 + a * 5 + trial * 3) % 23
    video = np.empty((length, size, size), np.uint8)
    video[:] = (np.arange(length) % 256)[:, None, None]
    video[:, 0, 0], video[:, 0, 1], video[:, 0, 2] = person, a, trial
    return video


def make_processed(root, persons, trials=(1, 2, 3, 4), **kwargs):
    """Write ``root/processed_64/<action>/personXX_<action>_dY.npy`` files."""
    for person in persons:
        for action in kth.CLASSES:
            folder = root / "processed_64" / action
            folder.mkdir(parents=True, exist_ok=True)
            for trial in trials:
                video = synthetic_video(person, action, trial, **kwargs)
                np.save(folder / f"person{person:02d}_{action}_d{trial}.npy", video)
    return root


@pytest.fixture
def raw_dir(tmp_path):
    """raw/<action>/ folders with three short AVI files."""
    for action in kth.CLASSES:
        (tmp_path / "raw" / action).mkdir(parents=True)
    write_avi(tmp_path / "raw/boxing/person01_boxing_d1_uncomp.avi", range(40, 200, 8))
    write_avi(tmp_path / "raw/walking/person21_walking_d3_uncomp.avi", [90] * 12)
    write_avi(tmp_path / "raw/walking/person02_walking_d4_uncomp.avi", [10, 250] * 5)
    return tmp_path


# --- conversion ------------------------------------------------------------------
def test_convert_decodes_resizes_and_keeps_the_first_channel(raw_dir):
    info = kth.convert_kth(raw_dir, progress=False)
    out = raw_dir / "processed_64"
    assert info["path"] == out and info["videos"] == 3 and info["frames"] == 42
    assert info["per_action"]["walking"] == 2
    video = np.load(out / "boxing" / "person01_boxing_d1.npy")
    assert video.shape == (20, 64, 64) and video.dtype == np.uint8
    expected = np.arange(40, 200, 8)[:, None, None]
    assert np.abs(video.astype(int) - expected).max() <= 6  # lossy YUV round trip
    flicker = np.load(out / "walking" / "person02_walking_d4.npy")
    assert flicker.shape == (10, 64, 64) and flicker[0].mean() < flicker[1].mean()


def test_name_parsing():
    assert kth.parse_name("person07_boxing_d3_uncomp.avi") == (7, "boxing", 3)
    assert kth.video_name("person07_boxing_d3_uncomp.avi") == "person07_boxing_d3"
    with pytest.raises(ValueError, match="naming scheme"):
        kth.parse_name("boxing.avi")


def test_convert_errors_leave_nothing_behind(raw_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="raw"):
        kth.convert_kth(tmp_path / "nowhere", progress=False)
    (raw_dir / "raw/jogging/person03_jogging_d1_uncomp.avi").write_bytes(b"\0" * 999)
    with pytest.raises(VideoDecodeError, match="person03_jogging_d1"):
        kth.convert_kth(raw_dir, progress=False)
    assert not (raw_dir / "processed_64").exists()
    assert not [p for p in raw_dir.iterdir() if p.name.startswith(".")]


def test_convert_refuses_to_overwrite_unless_asked(raw_dir):
    kth.convert_kth(raw_dir, progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        kth.convert_kth(raw_dir, progress=False)
    assert kth.convert_kth(raw_dir, overwrite=True, progress=False)["videos"] == 3


# --- split and training clips ------------------------------------------------------
@pytest.fixture
def processed(tmp_path):
    make_processed(tmp_path, persons=range(1, 26), trials=(1, 2))
    np.save(tmp_path / "processed_64/boxing/person05_boxing_d3.npy",
            synthetic_video(5, "boxing", 3, min_len=3)[:5])  # too short for clips
    return tmp_path


def test_official_split_persons_and_folds(processed):
    train = kth.KTH.from_dir(processed, "train")
    val = kth.KTH.from_dir(processed, "val")
    everything = kth.list_videos(processed / "processed_64")
    assert len(everything) == 20 * 6 * 2 + 1
    assert {kth.parse_name(p.name)[0] for p in everything} == set(range(1, 21))
    assert len(train) == int(0.95 * len(everything)) and len(train) + len(val) == 241
    val_paths = [everything[i] for i in split_indices(len(everything), "val")]
    assert val.videos.paths == val_paths
    assert not set(train.videos.paths) & set(val.videos.paths)


def test_generate_draws_long_enough_videos_deterministically(processed):
    source = kth.KTH.from_dir(processed, "all", seq_len=20)
    clips = source.generate(64, rng=np.random.default_rng(3))
    assert clips.shape == (64, 20, 1, 64, 64) and clips.dtype == np.uint8
    again = source.generate(64, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(clips, again)
    frames = clips[:, :, 0, 1, 1].astype(int)
    assert (np.diff(frames, axis=1) == 1).all()  # consecutive frames of one video
    persons = clips[:, 0, 0, 0, 0]
    assert persons.max() <= 20 and not (clips[:, 0, 0, 0, 2] == 3).any()
    source.seq_len = 41
    assert source.generate(2).shape[1] == 41
    with pytest.raises(ValueError, match="no video has"):
        source.seq_len = 100


def test_make_sources_for_kth(processed):
    cfg = PRESETS["kth"]
    train, val = training_sources(cfg, str(processed))
    assert train.generate(3, rng=np.random.default_rng(0)).shape == (3, 20, 1, 64, 64)
    assert val.generate(2, rng=np.random.default_rng(0)).shape == (2, 30, 1, 64, 64)
    (processed / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="processed_64"):
        training_sources(cfg, str(processed / "empty"))


# --- test set ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kth_test_persons(tmp_path_factory):
    return make_processed(tmp_path_factory.mktemp("kth"), persons=range(21, 26))


def test_test_set_is_the_official_one(kth_test_persons):
    arrays = kth.build_test_set(kth_test_persons, progress=False)
    seq = arrays["sequences"]
    assert seq.shape == (1000, 40, 64, 64) and seq.dtype == np.uint8
    assert hashlib.sha256(seq.tobytes()).hexdigest() == OFFICIAL_SEQUENCES_SHA256
    first = [(int(p), str(a), int(s[0, 0, 2]), int(s[0, 1, 1])) for p, a, s in
             zip(arrays["persons"], arrays["actions"], seq[:8])]
    assert first == OFFICIAL_FIRST_CLIPS
    small = kth.build_test_set(kth_test_persons, size=8, progress=False)
    np.testing.assert_array_equal(small["sequences"], seq[:8])


def test_test_set_file_and_dataset(kth_test_persons, tmp_path):
    path = kth.make_test_set(kth_test_persons, out_dir=tmp_path, size=12,
                             progress=False)
    assert path == tmp_path / "svg_test_set_40.npz"
    ds = kth.KTHTestSet(tmp_path)
    assert len(ds) == 12 and ds[0].shape == (40, 1, 64, 64)
    assert ds[0].dtype == torch.uint8
    ds.seq_len = 25
    assert ds[11].shape == (25, 1, 64, 64)
    with pytest.raises(ValueError, match="seq_len"):
        ds.seq_len = 41
    batches = list(make_test_batches(PRESETS["kth"], tmp_path, 40, 5))
    assert [b.shape for b in batches] == [(40, 5, 1, 64, 64)] * 2 + [(40, 2, 1, 64, 64)]


def test_test_set_errors(kth_test_persons, tmp_path):
    with pytest.raises(FileNotFoundError, match="kth-testset"):
        kth.KTHTestSet(tmp_path)
    np.savez(tmp_path / "svg_test_set_40.npz", sequences=np.zeros((3, 40, 64, 32)))
    with pytest.raises(InvalidTestSetError, match="sequences"):
        kth.KTHTestSet(tmp_path)
    short = make_processed(tmp_path / "short", persons=range(21, 26), min_len=10)
    with pytest.raises(ValueError, match="fewer than"):
        kth.make_test_set(short, size=5, progress=False)
    assert not list(short.glob("*.npz"))
    with pytest.raises(FileNotFoundError, match="kth-convert"):
        kth.build_test_set(tmp_path / "missing", size=1, progress=False)


# --- download ------------------------------------------------------------------------
def test_download_fails_fast_and_clearly_offline(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="cannot download"):
        kth.download_kth(tmp_path, classes=("boxing",), timeout=5, progress=False,
                         urls=("http://127.0.0.1:9/{action}.zip",))
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "raw" / "boxing").exists()


def test_download_extracts_a_good_zip_and_rejects_a_truncated_one(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with zipfile.ZipFile(raw / "boxing.zip", "w") as archive:
        archive.writestr("person01_boxing_d1_uncomp.avi", b"x" * 5000)
    data = (raw / "boxing.zip").read_bytes()
    (raw / "running.zip").write_bytes(data[: len(data) // 2])
    folders = kth.download_kth(tmp_path, classes=("boxing",), urls=())
    assert [p.name for p in folders[0].iterdir()] == ["person01_boxing_d1_uncomp.avi"]
    assert not (raw / "boxing.zip").exists()
    with pytest.raises(ArchiveError, match="truncated or corrupt.*removed"):
        kth.download_kth(tmp_path, classes=("running",), urls=())
    assert not (raw / "running").exists()
    assert not (raw / "running.zip").exists()  # not kept, to fail again next time


# --- command line --------------------------------------------------------------------
def test_cli_convert_and_testset(raw_dir, kth_test_persons, capsys):
    assert cli.main(["data", "kth-convert", "--data-dir", str(raw_dir),
                     "--no-progress"]) == 0
    assert "3 videos, 42 frames" in capsys.readouterr().out
    assert cli.main(["data", "kth-testset", "--data-dir", str(kth_test_persons),
                     "--size", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "svg_test_set_40.npz" in out and "(4, 40, 64, 64)" in out
    assert cli.main(["data", "kth-convert", "--data-dir", str(raw_dir / "x"),
                     "--no-progress"]) == 1
    assert "error:" in capsys.readouterr().err
