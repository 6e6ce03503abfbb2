"""The evaluation protocol: best-of-N selection, intervals, references, files."""
import json
import warnings

import numpy as np
import pytest
import torch
from helpers import tiny, video

from srvp.evaluate import Protocol, evaluate, format_table, summarize
from srvp.metrics import psnr
from srvp.run_folder import save_results


class NoisyOracle(torch.nn.Module):
    """Sample k of video b is the truth plus noise of level (k + b) % n + 1."""

    def __init__(self, x, n, nt_cond=3):
        super().__init__()
        self.x, self.nt_cond, self.n, self.calls = x, nt_cond, n, 0
        self.p = torch.nn.Parameter(torch.zeros(1))

    def _truth_of(self, x_cond):
        cols = [next(b for b in range(self.x.shape[1])
                     if torch.equal(self.x[0, b], x_cond[0, j]))
                for j in range(x_cond.shape[1])]
        return self.x[self.nt_cond:, cols]

    def predict(self, x_cond, nt_pred, n_samples, n_euler_steps=None):
        out = []
        for _ in range(n_samples):
            k = self.calls
            self.calls += 1
            truth = self._truth_of(x_cond)
            bsz = x_cond.shape[1]
            levels = torch.tensor([(k + b) % self.n + 1 for b in range(bsz)])
            g = torch.Generator().manual_seed(k)
            noise = torch.rand(truth.shape, generator=g) - 0.5
            out.append((truth + 0.05 * levels.view(1, -1, 1, 1, 1) * noise).clamp(0, 1))
        return torch.stack(out)


def _data(bsz=3):
    torch.manual_seed(0)
    x = torch.rand(7, bsz, 1, 64, 64)
    return x, x[3:]


def test_best_and_worst_sample_per_video():
    x, truth = _data()
    res = evaluate(NoisyOracle(x, 4), [x], Protocol(3, 4, 4), chunk_samples=3,
                   progress=False)
    best = torch.from_numpy(res["samples"]["psnr_best"]).float() / 255
    worst = torch.from_numpy(res["samples"]["psnr_worst"]).float() / 255
    for b in range(3):
        k_best = [k for k in range(4) if (k + b) % 4 == 0][0]  # noise level 1
        k_worst = [k for k in range(4) if (k + b) % 4 == 3][0]  # noise level 4
        cand = NoisyOracle(x, 4).predict(x[:3], 4, 4)
        torch.testing.assert_close(best[b], cand[k_best, :, b], atol=1 / 255, rtol=0)
        torch.testing.assert_close(worst[b], cand[k_worst, :, b], atol=1 / 255, rtol=0)
        expected = psnr(cand[k_best, :, b:b + 1], truth[:, b:b + 1]).mean().item()
        assert res["metrics"]["psnr"]["per_video"][b] == pytest.approx(expected, 1e-5)
    assert res["metrics"]["psnr"]["per_frame"].shape == (3, 4)


def test_chunking_does_not_change_the_result():
    x, truth = _data()
    a = evaluate(NoisyOracle(x, 5), [x], Protocol(3, 4, 5), chunk_samples=2,
                 progress=False)
    b = evaluate(NoisyOracle(x, 5), [x], Protocol(3, 4, 5), chunk_samples=5,
                 progress=False)
    for m in ("psnr", "ssim"):
        np.testing.assert_allclose(a["metrics"][m]["per_video"],
                                   b["metrics"][m]["per_video"])


def test_keep_samples_keeps_the_arrays_of_the_first_videos_only():
    # the scores cover every video; only the sample arrays stop after k videos,
    # so that a 5,000-video evaluation does not hold 4 GB of samples
    x, _ = _data(bsz=5)
    batches = [x[:, :2], x[:, 2:4], x[:, 4:]]
    full = evaluate(NoisyOracle(x, 4), batches, Protocol(3, 4, 4), progress=False)
    part = evaluate(NoisyOracle(x, 4), batches, Protocol(3, 4, 4), progress=False,
                    keep_samples=3)
    for m in ("psnr", "ssim"):
        np.testing.assert_array_equal(part["metrics"][m]["per_video"],
                                      full["metrics"][m]["per_video"])
    assert set(part["samples"]) == set(full["samples"])
    for key, value in full["samples"].items():
        assert len(value) == 5 and len(part["samples"][key]) == 3, key
        np.testing.assert_array_equal(part["samples"][key], value[:3])
    none = evaluate(NoisyOracle(x, 4), batches, Protocol(3, 4, 4), progress=False,
                    keep_samples=0)
    assert all(len(v) == 0 for v in none["samples"].values())
    assert none["metrics"]["psnr"]["n"] == 5


def test_references_and_interval():
    x, truth = _data()
    res = evaluate(NoisyOracle(x, 2), [x[:, :2], x[:, 2:]], Protocol(3, 4, 2),
                   progress=False)
    blank = psnr(torch.zeros_like(truth), truth).mean(0).double().numpy()
    assert res["reference"]["blank"]["psnr"]["mean"] == pytest.approx(blank.mean())
    last = psnr(x[2:3].expand_as(truth), truth).mean(0).double().numpy()
    assert res["reference"]["last_frame"]["psnr"]["mean"] == pytest.approx(last.mean())
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0]))
    assert s["mean"] == 2.5 and s["ci95"] == pytest.approx(1.96 * np.sqrt(1.25) / 2)
    assert "reference: blank" in format_table(res)


def test_infinite_psnr_is_kept_and_summarised_apart(tmp_path):
    """A reference frame identical to the truth has an infinite PSNR: the mean
    stays infinite (the protocol), the finite videos get their own summary, the
    table says so, and the JSON report is still written."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy "invalid value" warning
        s = summarize(np.array([1.0, np.inf, 3.0]))
    assert s["mean"] == np.inf and s["n_infinite"] == 1 and s["n"] == 3
    assert s["finite_mean"] == 2.0
    assert s["finite_ci95"] == pytest.approx(1.96 * 1.0 / np.sqrt(2))
    assert "n_infinite" not in summarize(np.array([1.0, 2.0]))
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_gen, bsz=2)
    x[cfg.nt_cond] = x[cfg.nt_cond - 1]  # the last frame repeated is exact once
    res = evaluate(model, [x], Protocol(cfg.nt_cond, cfg.nt_gen - cfg.nt_cond, 2),
                   progress=False)
    last = res["reference"]["last_frame"]["psnr"]
    assert last["mean"] == np.inf and last["n_infinite"] == 2
    table = format_table(res)
    assert "2 of 2 videos have a frame identical to the truth" in table
    save_results(res, tmp_path / "results.json")
    assert (tmp_path / "results.json").exists()


def test_real_model_end_to_end_and_files(tmp_path):
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_gen, bsz=2)
    res = evaluate(model, [x], Protocol(cfg.nt_cond, cfg.nt_gen - cfg.nt_cond, 3),
                   progress=False)
    n_pred = cfg.nt_gen - cfg.nt_cond
    assert res["samples"]["psnr_best"].shape == (2, n_pred, 1, 64, 64)
    assert res["samples"]["random"].shape == (2, 3, n_pred, 1, 64, 64)
    assert res["samples"]["cond"].shape == (2, cfg.nt_cond, 1, 64, 64)
    save_results(res, tmp_path / "results.json")
    report = json.loads((tmp_path / "results.json").read_text())
    assert len(report["metrics"]["ssim"]["per_video"]) == 2
    with np.load(tmp_path / "results_samples.npz") as z:
        assert z["ssim_best"].dtype == np.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json",
                                                         "results_samples.npz"]


class AutocastProbe(torch.nn.Module):
    """Predicts the truth plus noise from the global generator, computed in
    the autocast precision when autocast is on; records what it ran under."""

    def __init__(self, x, nt_cond):
        super().__init__()
        self.x, self.nt_cond, self.seen = x, nt_cond, []
        self.p = torch.nn.Parameter(torch.zeros(1))

    def predict(self, x_cond, nt_pred, n_samples, n_euler_steps=None):
        on = torch.is_autocast_enabled("cpu")
        self.seen.append(torch.get_autocast_dtype("cpu") if on else None)
        truth = self.x[self.nt_cond:self.nt_cond + nt_pred]
        truth = truth.expand(n_samples, *truth.shape)
        noise = 0.2 * torch.randn(truth.shape)
        pred = truth + noise
        return (pred.to(torch.bfloat16) if on else pred).clamp(0, 1)


def test_bf16_predictions_run_under_autocast_and_score_in_float32():
    """amp="bf16": predictions under bfloat16 autocast from the same random
    draws, scores computed in float32 from them and close to the float32
    ones (far closer than another seed's); the report says so, and a float32
    report reads as before the option (no "amp" key)."""
    x, _ = _data(bsz=4)
    runs, seen = {}, {}
    for amp, seed in (("off", 1), ("bf16", 1), ("off", 2)):
        model = AutocastProbe(x, 3)
        runs[amp, seed] = evaluate(model, [x], Protocol(3, 4, 6, seed=seed, amp=amp),
                                   progress=False)
        seen[amp, seed] = set(model.seen)
    assert seen["off", 1] == {None} and seen["bf16", 1] == {torch.bfloat16}
    scores = {k: r.metrics["psnr"]["per_video"] for k, r in runs.items()}
    assert scores["bf16", 1].dtype == np.float64
    rounding = np.abs(scores["bf16", 1] - scores["off", 1]).max()
    other_draws = np.abs(scores["off", 2] - scores["off", 1]).max()
    assert 0 < rounding < 0.05 < other_draws
    assert "amp" not in runs["off", 1].report()["protocol"]
    assert runs["bf16", 1].report()["protocol"]["amp"] == "bf16"
    with pytest.raises(ValueError, match="amp='int8'"):
        Protocol(3, 4, amp="int8")


def test_cli_on_a_run_folder(tmp_path, tiny_mnist_dir):
    import subprocess
    import sys

    from srvp import preset, save_experiment
    from srvp.model import SRVP

    save_experiment(SRVP(preset("smoke")), tmp_path / "run")
    base = [sys.executable, "-m", "srvp", "evaluate", str(tmp_path / "run"),
            "--data-dir", str(tiny_mnist_dir), "--n-videos", "4", "--n-samples", "2"]
    res = subprocess.run(base, capture_output=True, text=True)
    assert res.returncode == 2 and "--lpips-weights" in res.stderr
    res = subprocess.run(base + ["--no-lpips"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "reference: last_frame" in res.stdout
    report = json.loads((tmp_path / "run" / "results.json").read_text())
    assert report["metrics"]["psnr"]["n"] == 4
    with np.load(tmp_path / "run" / "results_samples.npz") as z:
        assert len(z["psnr_best"]) == 4  # fewer videos than the default 256
    res = subprocess.run(base + ["--no-lpips", "--keep-samples", "1", "--out",
                                 str(tmp_path / "one.json")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "one.json").read_text())["metrics"]["psnr"]["n"] == 4
    with np.load(tmp_path / "one_samples.npz") as z:
        assert len(z["psnr_best"]) == 1 and len(z["truth"]) == 1
    # an evaluation already written is never replaced by accident
    before = (tmp_path / "run" / "results.json").read_bytes()
    res = subprocess.run(base + ["--no-lpips", "--n-videos", "2"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "--overwrite" in res.stderr
    assert (tmp_path / "run" / "results.json").read_bytes() == before
    res = subprocess.run(base + ["--no-lpips", "--n-videos", "2", "--overwrite"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())[
        "metrics"]["psnr"]["n"] == 2


def test_fvd_from_results_with_random_i3d():
    """FVD plumbing on the stored samples, with a randomly initialised I3D
    (numbers meaningless; the real weights cannot be downloaded here)."""
    from srvp.evaluate import add_fvd
    from srvp.metrics.i3d import InceptionI3d

    x, truth = _data(bsz=2)
    x = torch.cat([x, x[-3:]])  # 10 frames: I3D needs at least 9
    res = evaluate(NoisyOracle(x, 2, nt_cond=3), [x], Protocol(3, 7, 2),
                   progress=False)
    i3d = InceptionI3d().eval()
    value = add_fvd(res, i3d, batch_size=2)
    assert np.isfinite(value) and res["fvd"]["value"] == value
    assert "FVD" in format_table(res)
    part = evaluate(NoisyOracle(x, 2, nt_cond=3), [x], Protocol(3, 7, 2),
                    progress=False, keep_samples=1)
    with pytest.raises(ValueError, match="FVD needs the samples of all 2 videos"):
        add_fvd(part, i3d, batch_size=2)
