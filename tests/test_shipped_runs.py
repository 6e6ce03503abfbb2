"""The runs shipped in book/_static/runs: what the chapters load must load."""
import json
from pathlib import Path

import pytest
import torch

from srvp import Config, load_official, preset
from srvp.cli import build_parser
from srvp.runlog import read_log
from srvp.train_cli import parse_overrides

RUNS = Path(__file__).resolve().parents[1] / "book" / "_static" / "runs"
ALL = sorted(p for p in RUNS.iterdir() if p.is_dir())
WITH_WEIGHTS = sorted(p.parent for p in RUNS.glob("*/model.pt"))


def test_the_book_model_was_trained_with_the_cpu_preset():
    # Chapter 4 checks its hand-made first step against this run's log, and the
    # README trains it with `--preset cpu --amp bf16` and no --set: both need the
    # same config.
    assert Config.load(RUNS / "cpu" / "config.json") == preset("cpu")
    assert (RUNS / "cpu" / "model.pt").exists()


@pytest.mark.parametrize("run", WITH_WEIGHTS, ids=lambda p: p.name)
def test_shipped_weights_load_strictly_and_stay_small(run):
    assert (run / "model.pt").stat().st_size < 15 * 2**20
    model, cfg = load_official(run)  # strict: every key, every shape
    assert cfg == Config.load(run / "config.json")
    # float16 storage must not have overflowed: a diverged or badly exported run
    # would load strictly and still predict NaN frames
    bad = [n for n, t in model.state_dict().items()
           if t.is_floating_point() and not torch.isfinite(t).all()]
    assert not bad, f"non-finite values in {bad[:3]}"


@pytest.mark.parametrize("run", ALL, ids=lambda p: p.name)
def test_every_run_records_its_schedule_command_and_evaluation(run):
    cfg = Config.load(run / "config.json")
    log = read_log(run)
    assert log["train"][-1]["step"] == cfg.n_iter  # the schedule was completed
    assert log["val"], "no validation record"
    info = json.loads((run / "run.json").read_text())
    assert "MNIST_DIR" in info["argv"], "the data folder must be a placeholder"
    assert not any(a.startswith("/") for a in info["argv"]), "a local path leaked"
    results = json.loads((run / "results.json").read_text())
    assert results["protocol"]["n_samples"] == 100  # the paper's best of 100
    n = results["metrics"]["psnr"]["n"]
    assert n >= 200 and len(results["metrics"]["psnr"]["per_video"]) == n


@pytest.mark.parametrize("run", sorted(RUNS.glob("*/ABOUT.txt")),
                         ids=lambda p: p.parent.name)
def test_the_command_in_about_trains_the_recorded_config(run):
    # ABOUT.txt tells how to train the run again with today's presets: when a
    # preset changes, the commands of the older runs must say what they changed
    commands = [line.split() for line in run.read_text().splitlines()
                if "srvp train" in line]
    assert len(commands) == 1, "ABOUT.txt should give one training command"
    assert commands[0][:3] == ["python", "-m", "srvp"]
    args = build_parser().parse_args(commands[0][3:])  # the CLI's own parser
    cfg = preset(args.preset, **parse_overrides(args.set))
    assert cfg == Config.load(run.parent / "config.json")
    # the precision is an option of the run, not of its config
    info = json.loads((run.parent / "run.json").read_text())
    assert args.amp == info["options"]["amp"], "ABOUT.txt and run.json: --amp differs"


@pytest.mark.parametrize("path", sorted(RUNS.glob("*/results_*.json")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_extra_evaluations_cover_the_videos_they_name(path):
    # results_5000.json: the whole test set, stored without its per-frame scores
    results = json.loads(path.read_text())
    n_videos = int(path.stem.split("_")[1])
    assert results["protocol"]["n_samples"] == 100
    for metric in results["metrics"].values():
        assert metric["n"] == n_videos == len(metric["per_video"])
        assert metric["mean"] == pytest.approx(sum(metric["per_video"]) / n_videos)
    first = json.loads((path.parent / "results.json").read_text())["metrics"]["psnr"]
    # the same first videos, the same seed: only the weights' storage may differ
    k = first["n"]
    diffs = [a - b for a, b in zip(results["metrics"]["psnr"]["per_video"][:k],
                                   first["per_video"])]
    assert abs(sum(diffs) / k) < 0.01
