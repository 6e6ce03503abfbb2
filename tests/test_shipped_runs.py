"""The runs shipped in book/runs: what the chapters load must load, and the
table of all CPU runs (history.csv) must agree with the CLI and the shipped files."""
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import Config, load_official, preset
from srvp.cli import build_parser
from srvp.cli.train import parse_overrides
from srvp.run_folder import read_log

RUNS = Path(__file__).resolve().parents[1] / "book" / "runs"
ALL = sorted(p.parent for p in RUNS.glob("*/config.json"))  # the trained runs
WITH_WEIGHTS = sorted(p.parent for p in RUNS.glob("*/model.pt"))
with open(RUNS / "history.csv", newline="") as f:
    HISTORY = list(csv.DictReader(f))
BY_RUN = {row["run"]: row for row in HISTORY}
NUMBERS = ["steps", "batch", "train_minutes", "kl_y", "kl_z", "kl_z_1k", "val_psnr",
           "n_videos", "psnr", "psnr_ci95", "ssim", "ssim_ci95", "psnr_first",
           "psnr_last", "dpsnr", "dpsnr_ci95", "dssim", "dssim_ci95", "dpsnr_svg",
           "dpsnr_svg_ci95"]


def ci95(values):
    values = np.asarray(values, dtype=np.float64)
    return 1.96 * values.std() / math.sqrt(len(values))


def chain(run):
    """The rows from the run's root down to the run."""
    rows = [BY_RUN[run]]
    while rows[0]["parent"]:
        rows.insert(0, BY_RUN[rows[0]["parent"]])
    return rows


def train_args(run):
    """The run's training command, parsed by the CLI's own parser."""
    rows = chain(run)
    argv = ["train", "--preset", rows[0]["preset"]]
    for row in rows:
        argv += row["changes"].split()
    return build_parser().parse_args(argv + ["--data-dir", "MNIST_DIR", "--out", "x"])


def config_of(run):
    args = train_args(run)
    return preset(args.preset, **parse_overrides(args.set))


def test_the_book_model_was_trained_with_the_cpu_preset():
    # Chapter 4 checks its hand-made first step against this run's log, and the
    # README trains it with `--preset cpu --amp bf16` and no --set: both need the
    # same config.
    assert Config.load(RUNS / "cpu" / "config.json") == preset("cpu")
    assert (RUNS / "cpu" / "model.pt").exists()


@pytest.mark.parametrize("run", WITH_WEIGHTS, ids=lambda p: p.name)
def test_shipped_weights_load_strictly_and_stay_small(run):
    stored = torch.load(run / "model.pt", weights_only=True)
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == \
        {torch.float16}, "shipped weights are stored in float16"
    assert (run / "model.pt").stat().st_size < 15 * 2**20
    model, cfg = load_official(run)  # strict: every key, every shape
    assert cfg == Config.load(run / "config.json")
    loaded = model.state_dict()
    for name, t in stored.items():  # float16 values, computed with in float32
        assert torch.equal(loaded[name], t.to(loaded[name].dtype)), name
    # float16 storage must not have overflowed: a diverged or badly exported run
    # would load strictly and still predict NaN frames
    bad = [n for n, t in loaded.items()
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
    assert not results.get("model", {}).get("folder", "").startswith("/"), \
        "a local path leaked into results.json"
    # the paper's protocols: best of 100 samples; one on deterministic videos
    assert results["protocol"]["n_samples"] == (1 if cfg.deterministic else 100)
    n = results["metrics"]["psnr"]["n"]
    for metric in results["metrics"].values():
        assert metric["n"] == n >= 200 and len(metric["per_video"]) == n
        assert metric["mean"] == pytest.approx(np.mean(metric["per_video"]))
        assert metric["ci95"] == pytest.approx(ci95(metric["per_video"]))


@pytest.mark.parametrize("path", sorted(p for p in RUNS.glob("*/results_*.json")
                                       if p.stem.split("_")[1].isdigit()),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_extra_evaluations_cover_the_videos_they_name(path):
    # results_5000.json: the whole test set, summary only
    results = json.loads(path.read_text())
    first = json.loads((path.parent / "results.json").read_text())
    n_videos = int(path.stem.split("_")[1])
    assert results["protocol"] == first["protocol"]
    for name, metric in results["metrics"].items():
        assert metric["n"] == n_videos > first["metrics"][name]["n"]
        # more videos, a narrower interval around a mean that the first videos'
        # interval already holds
        assert 0 < metric["ci95"] < first["metrics"][name]["ci95"]
        assert abs(metric["mean"] - first["metrics"][name]["mean"]) < \
            first["metrics"][name]["ci95"]


def test_the_bf16_evaluation_is_the_recorded_one_in_another_precision():
    """cpu/results_bf16.json (chapter 5): the protocol of results.json with
    amp bf16, the same videos, summaries that its per-video scores give, and
    scores close to float32 video by video (the same noise, other rounding)."""
    fast = json.loads((RUNS / "cpu" / "results_bf16.json").read_text())
    first = json.loads((RUNS / "cpu" / "results.json").read_text())
    assert fast["protocol"] == {**first["protocol"], "amp": "bf16"}
    for name, metric in fast["metrics"].items():
        a = np.asarray(first["metrics"][name]["per_video"])
        b = np.asarray(metric["per_video"])
        assert metric["n"] == len(b) == len(a)
        assert metric["mean"] == pytest.approx(b.mean())
        assert metric["ci95"] == pytest.approx(ci95(b))
        assert abs((b - a).mean()) < 0.1 * first["metrics"][name]["ci95"]
        assert not np.array_equal(a, b)


# ------------------------------------------------------------------ history.csv
def test_history_has_one_row_per_run_and_parents_come_first():
    names = [row["run"] for row in HISTORY]
    assert len(names) == len(set(names))
    assert {p.name for p in ALL} <= set(names), "every shipped run has a row"
    for i, row in enumerate(HISTORY):
        if row["parent"]:
            assert row["parent"] in names[:i], f"{row['run']}: parent after it"
            assert not row["preset"] or row["preset"] == chain(row["run"])[0]["preset"]
            assert row["changes"], f"{row['run']} changes nothing from its parent"
        else:
            assert row["preset"], f"{row['run']}: a root names its preset"


def test_history_columns_are_documented():
    readme = (RUNS / "README.md").read_text()
    documented = set(re.findall(r"`(\w+)`", readme))
    for column in HISTORY[0]:
        base = column.removesuffix("_ci95")
        assert column in documented or base in documented, column


@pytest.mark.parametrize("run", list(BY_RUN))
def test_history_row_is_a_valid_command_with_finite_numbers(run):
    row = BY_RUN[run]
    assert re.fullmatch(r"((--set \w+=\S+|--amp \w+)( |$))*", row["changes"]), \
        row["changes"]
    args = train_args(run)
    cfg = config_of(run)  # raises on an unknown key or a badly typed value
    assert args.amp == row["amp"]
    assert (cfg.n_iter, cfg.batch_size) == (int(row["steps"]), int(row["batch"]))
    for column in NUMBERS:
        if row[column]:
            assert math.isfinite(float(row[column])), column
    for column in ("psnr", "ssim", "n_videos", "train_minutes"):
        assert float(row[column]) > 0, column
    assert int(row["n_videos"]) >= 200
    if row["parent"] and not cfg.deterministic:  # paired on the same test only
        assert row["dpsnr"] and float(row["dpsnr_ci95"]) > 0
    if cfg.deterministic:
        assert not row["dpsnr"] and not row["dpsnr_svg"], "another test: no pairing"
    # an interval with its mean, or neither
    for mean in ("psnr", "ssim", "dpsnr", "dssim", "dpsnr_svg"):
        assert bool(row[mean]) == bool(row[mean + "_ci95"]), mean


@pytest.mark.parametrize("run", ALL, ids=lambda p: p.name)
def test_history_matches_the_shipped_files(run):
    row = BY_RUN[run.name]
    assert config_of(run.name) == Config.load(run / "config.json")
    assert row["amp"] == json.loads((run / "run.json").read_text())["options"]["amp"]
    log = read_log(run)
    assert float(row["train_minutes"]) == pytest.approx(
        log["train"][-1]["time"] / 60, abs=0.05)
    assert float(row["val_psnr"]) == pytest.approx(
        max(r["val_psnr"] for r in log["val"]), abs=0.005)
    if row["kl_z"]:
        n = int(row["steps"])
        for term in ("kl_y", "kl_z"):
            tail = [r[term] for r in log["train"] if r["step"] > n - 500]
            assert float(row[term]) == pytest.approx(np.mean(tail), abs=0.05)
        early = [r["kl_z"] for r in log["train"] if 900 < r["step"] <= 1100]
        assert float(row["kl_z_1k"]) == pytest.approx(np.mean(early), abs=0.005)
    metrics = json.loads((run / "results.json").read_text())["metrics"]
    assert int(row["n_videos"]) == metrics["psnr"]["n"]
    for name, digits in (("psnr", 3), ("ssim", 4)):
        for key in ("mean", "ci95"):
            column = name if key == "mean" else f"{name}_ci95"
            assert float(row[column]) == pytest.approx(metrics[name][key],
                                                       abs=0.6 * 10**-digits)
    if "per_frame" in metrics["psnr"]:
        frames = np.mean(metrics["psnr"]["per_frame"], axis=0)
        assert float(row["psnr_first"]) == pytest.approx(frames[0], abs=0.005)
        assert float(row["psnr_last"]) == pytest.approx(frames[-1], abs=0.005)


def test_history_paired_difference_with_svg_matches_the_shipped_files():
    ours, svg = (json.loads((RUNS / run / "results.json").read_text())["metrics"]
                 for run in ("cpu", "svg_cpu"))
    n = min(ours["psnr"]["n"], svg["psnr"]["n"])
    diff = (np.asarray(ours["psnr"]["per_video"][:n])
            - np.asarray(svg["psnr"]["per_video"][:n]))
    assert float(BY_RUN["cpu"]["dpsnr_svg"]) == pytest.approx(diff.mean(), abs=5e-4)
    assert float(BY_RUN["cpu"]["dpsnr_svg_ci95"]) == pytest.approx(ci95(diff),
                                                                   abs=5e-4)


# ------------------------------------------------------------- dt_table (ch. 6)
def test_dt_table_summaries_come_from_its_per_video_scores():
    """book/runs/dt_table: every summary and paired difference of table.json is
    what the per-video scores of per_video.npz give (scripts/dt_table.py)."""
    from srvp.evaluate import summarize

    table = json.loads((RUNS / "dt_table" / "table.json").read_text())
    cells = {(c["train_dt"], c["test_dt"]): c for c in table["cells"]}
    assert set(cells) == {(tr, te) for tr in ("1", "1/2") for te in ("1", "1/2", "1/4")}
    assert table["protocol"]["runs"] == {"1": "runs/cpu", "1/2": "runs/cpu_dt2"}
    with np.load(RUNS / "dt_table" / "per_video.npz") as z:
        arrays = {k: z[k] for k in z.files}
    n = table["protocol"]["n_videos"]

    def per_video(cell, name):
        values = arrays[f"{cell['cell']}/{name}"]
        assert values.shape == (n,)
        return values

    def same(summary, values):
        expected = summarize(values)
        assert summary["n"] == n
        assert summary["mean"] == pytest.approx(expected["mean"], rel=1e-12)
        assert summary["ci95"] == pytest.approx(expected["ci95"], rel=1e-12)

    own = {"1": ("1", "1"), "1/2": ("1/2", "1/2")}
    for (tr, te), c in cells.items():
        for m in ("psnr", "ssim"):
            same(c[m], per_video(c, m))
            if tr != "1":
                same(c["minus_train_dt1"][m],
                     per_video(c, m) - per_video(cells["1", te], m))
            if te != tr:
                same(c["minus_own_train_dt"][m],
                     per_video(c, m) - per_video(cells[own[tr]], m))
        for name in ("ink_error", "centroid_error"):
            same(c["inbetween"][name], per_video(c, name))
            same(c["truth_two_frames"][name], per_video(c, f"truth_{name}"))


# ------------------------------------------------------------ the README's table
README_ROWS = {"SRVP, the book's model²": "cpu",
               "SRVP, the book's model at Δt = 1/2⁴": "cpu_dt2",
               "SVG-LP, the book's budget³": "svg_cpu"}


@pytest.mark.parametrize("label", README_ROWS)
def test_readme_results_are_those_of_the_shipped_files(label):
    """Each score of the README's results table (all 5,000 videos, first 1,000,
    first 200) is what the run's results files give, as printed (rounded)."""
    from srvp.evaluate import summarize

    readme = (RUNS.parents[1] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| {label} |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    run = RUNS / README_ROWS[label]
    metrics = json.loads((run / "results.json").read_text())["metrics"]
    checked = 0
    for cell, n in zip(cells, (5000, 1000, 200)):
        if not cell:
            continue
        numbers = [float(x) for x in re.findall(r"\d+\.\d+", cell)]
        if n == 5000:
            full = json.loads((run / "results_5000.json").read_text())["metrics"]
            expected = [full[m][k] for m in ("psnr", "ssim") for k in ("mean", "ci95")]
        else:
            assert metrics["psnr"]["n"] >= n
            expected = [summarize(np.asarray(metrics[m]["per_video"][:n]))[k]
                        for m in ("psnr", "ssim") for k in ("mean", "ci95")]
        for shown, value in zip(numbers, expected):
            digits = len(str(shown).split(".")[1])
            assert abs(shown - value) <= 0.5 * 10**-digits + 1e-12, (label, n, cell)
        checked += 1
    assert checked


# ------------------------------------------------------------ the README's speed table
def _figures(text):
    """(value, decimals, unit) of each number in ``text`` that is not part of a
    word (bf16, float32); unit "ms", "s" or ""."""
    out = []
    for num, unit in re.findall(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(ms|s)?\b", text):
        decimals = len(num.split(".")[1]) if "." in num else 0
        out.append((float(num), decimals, unit))
    return out


def _h200():
    """Readers of benchmarks/results/h200.md: a cell of the official-code table
    (row prefix, column) and the it/s of a bench_train.py line (its first fields)."""
    lines = (RUNS.parents[1] / "benchmarks" / "results" / "h200.md").read_text(
        ).splitlines()

    def cell(prefix, column):
        row = next(ln for ln in lines if ln.startswith(f"| {prefix}"))
        return float(row.strip("|").split("|")[column])

    def it_s(*fields):
        row = next(ln.split() for ln in lines if tuple(ln.split()[:6]) == fields)
        return float(row[6])

    authors = float(re.search(r"about (\d+) it/s", "\n".join(lines)).group(1))
    return cell, it_s, authors


def test_readme_speed_table_is_read_from_the_measurement_file():
    """Each figure of the README's GPU speed table, in its row and column, is
    the measurement of benchmarks/results/h200.md it stands for, as rounded."""
    cell, it_s, authors = _h200()
    s_ms = 1e3  # the official-code table is in seconds
    expected = {
        "a training step, `smmnist`": [cell("training step, smmnist", 1) * s_ms,
                                       cell("training step, smmnist", 3) * s_ms],
        "a training step, `kth`": [cell("training step, kth", 1) * s_ms,
                                   cell("training step, kth", 3) * s_ms],
        "best of 100 samples": [cell("best of 100", 1), cell("best of 100", 3)],
        "`train --preset smmnist`": [
            authors,
            it_s("cuda", "off", "False", "contiguous", "auto", "128"),
            it_s("cuda", "bf16", "False", "channels_last", "auto", "128"),
            it_s("cuda", "bf16", "True", "channels_last", "auto", "128")],
    }
    readme = (RUNS.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Speed", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")][2:]
    assert len(rows) == len(expected)
    for row, (label, values) in zip(rows, expected.items()):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0].startswith(label), (cells[0], label)
        shown = [f for c in cells[1:] for f in _figures(c.split("(")[0])]
        assert len(shown) == len(values), row
        for (value, decimals, _), want in zip(shown, values):
            assert abs(value - round(want, decimals)) < 1e-9, (row, value, want)


# ------------------------------------------------------------- ablation (ch. 8)
def test_ablation_table_comes_from_the_runs_and_its_per_video_scores():
    """book/runs/ablation (scripts/ablation.py): each row's test scores are its
    run's results.json, every summary and paired difference is what the per-video
    scores of per_video.npz give, and the curves are their per-frame means."""
    from srvp.evaluate import summarize

    table = json.loads((RUNS / "ablation" / "table.json").read_text())
    rows = {r["run"]: r for r in table["rows"]}
    assert "cpu" in rows and len(rows) >= 2
    with np.load(RUNS / "ablation" / "per_video.npz") as z:
        s = {k: z[k] for k in z.files}
    for name, row in rows.items():
        results = json.loads((RUNS / name / "results.json").read_text())["metrics"]
        prefix = "det_" if "long" not in row else ""
        for m in ("psnr", "ssim"):
            values = s[f"{name}/{prefix}{m}"]
            np.testing.assert_array_equal(values, results[m]["per_video"])
            assert row[m]["mean"] == pytest.approx(summarize(values)["mean"])
            assert row[m]["ci95"] == pytest.approx(summarize(values)["ci95"])
            curve = s[f"{name}/{'det_' if prefix else 'long_'}{m}_frames"]
            assert curve.shape[1] == table["protocol"]["long_frames"] - 5
            np.testing.assert_allclose(row["curves"][m]["mean"], curve.mean(0),
                                       atol=1e-4)
            if "minus_full" in row:
                diff = summarize(values - s[f"cpu/{m}"])
                assert row["minus_full"][m]["mean"] == pytest.approx(diff["mean"])
                assert row["minus_full"][m]["ci95"] == pytest.approx(diff["ci95"])
        if name != "cpu":  # trained with the recipe of the book's model
            assert config_of(name).replace(dynamics="residual", content=True) == \
                preset("cpu") or config_of(name).deterministic
