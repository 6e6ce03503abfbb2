"""scripts/ablation.py on tiny runs: it evaluates each run with the protocol it
names, pairs every variant with the full model video by video, resumes, and
leaves out runs that are missing."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import preset
from srvp.evaluate import summarize
from srvp.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(lr_scheduling_burnin=2, lr_scheduling_n_iter=1, val_interval=3,
            nt_gen=25, n_samples=100)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_mnist_dir):
    folder = tmp_path_factory.mktemp("runs")
    for name, change in (("cpu", {}), ("cpu_direct", dict(dynamics="direct")),
                         ("cpu_mmnist", dict(dataset="mmnist", deterministic=True))):
        train(preset("smoke", **TINY, **change), folder / name, tiny_mnist_dir,
              progress=False)
    return folder


def _script(runs, tiny_mnist_dir, work, out):
    cmd = [sys.executable, str(ROOT / "scripts" / "ablation.py"), "--data-dir",
           str(tiny_mnist_dir), "--runs", str(runs), "--work", str(work), "--out",
           str(out), "--n-videos", "3", "--long-videos", "2", "--det-videos", "4"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_the_table_pairs_variants_with_the_full_model(runs, tiny_mnist_dir, tmp_path):
    done = _script(runs, tiny_mnist_dir, tmp_path / "work", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cpu_nocontent: no run folder" in done.stdout  # left out, said so
    info = json.loads((tmp_path / "out" / "table.json").read_text())
    rows = {r["run"]: r for r in info["rows"]}
    assert list(rows) == ["cpu", "cpu_direct", "cpu_mmnist"]
    with np.load(tmp_path / "out" / "per_video.npz") as z:
        s = {k: z[k] for k in z.files}
    n_pred = 100 - preset("smoke").nt_cond  # 100 frames, the first ones given
    assert s["cpu/psnr"].shape == (3,)
    assert s["cpu/long_psnr_frames"].shape == (2, n_pred)
    assert s["cpu_mmnist/det_psnr_frames"].shape == (4, n_pred)
    diff = rows["cpu_direct"]["minus_full"]["psnr"]
    assert diff == summarize(s["cpu_direct/psnr"] - s["cpu/psnr"])
    assert rows["cpu_direct"]["psnr"] == summarize(s["cpu_direct/psnr"])
    curve = rows["cpu"]["curves"]["psnr"]["mean"]
    np.testing.assert_allclose(curve, s["cpu/long_psnr_frames"].mean(0), atol=1e-4)
    assert "minus_full" not in rows["cpu_mmnist"] and len(curve) == n_pred
    # the 5 + 20 evaluation is the run's own results.json; one sample when
    # deterministic; a second call re-uses every file (nothing is evaluated)
    det = json.loads((runs / "cpu_mmnist" / "results.json").read_text())
    assert det["protocol"]["n_samples"] == 1 and det["protocol"]["nt_pred"] == n_pred
    again = _script(runs, tiny_mnist_dir, tmp_path / "work", tmp_path / "out2")
    assert again.returncode == 0 and "srvp evaluate" not in again.stdout
    assert (tmp_path / "out2" / "table.json").read_text() == \
        (tmp_path / "out" / "table.json").read_text()
    # without the work folder, the scores that --out keeps are used: nothing is
    # evaluated, the table is the same; other numbers of videos evaluate anew
    kept = _script(runs, tiny_mnist_dir, tmp_path / "work3", tmp_path / "out")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert "srvp evaluate" not in kept.stdout and "cpu_direct: scores of" in kept.stdout
    assert (tmp_path / "out" / "table.json").read_text() == \
        (tmp_path / "out2" / "table.json").read_text()
    other = tmp_path / "other"
    (other / "out").mkdir(parents=True)
    for name in ("table.json", "per_video.npz"):
        text = (tmp_path / "out" / name).read_bytes()
        (other / "out" / name).write_bytes(
            text.replace(b'"det_videos": 4', b'"det_videos": 5')
            if name == "table.json" else text)
    fresh = _script(runs, tiny_mnist_dir, other / "work", other / "out")
    assert fresh.returncode == 0 and "cpu_direct: scores of" not in fresh.stdout


def test_export_ships_half_weights_and_a_command_without_local_paths(runs, tmp_path,
                                                                    tiny_mnist_dir):
    from srvp.run_folder import export_run, read_run_info, write_run_info

    run = runs / "cpu_direct"
    info = read_run_info(run)
    write_run_info(run, {**info, "argv": ["-m srvp", "train", "--data-dir",
                                         str(tiny_mnist_dir), "--out", str(run),
                                         "--set", "dynamics=direct"]})
    weights = export_run(run, tmp_path / "shipped")
    stored = torch.load(weights, weights_only=True)
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == \
        {torch.float16}
    argv = read_run_info(tmp_path / "shipped")["argv"]
    assert argv == ["-m srvp", "train", "--data-dir", "MNIST_DIR", "--out",
                    "runs/cpu_direct", "--set", "dynamics=direct"]
