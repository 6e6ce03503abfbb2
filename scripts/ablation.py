"""The ablation table of book ch. 8, from the shipped runs: what the residual
update, the content variable and latent dynamics buy at the book's budget.

Usage:
  python scripts/ablation.py --data-dir MNIST_DIR --work runs/ablation

Runs (folders of book/runs/, each trained with the `cpu` recipe, same steps,
seed and precision): `cpu` (the full model), `cpu_direct` (--set
dynamics=direct), `cpu_nocontent` (--set content=false) on Stochastic Moving
MNIST; `cpu_mmnist` (--set dataset=mmnist --set deterministic=true) on
deterministic Moving MNIST. A run whose folder is missing is left out of the
table, with a message.

Per Stochastic Moving MNIST run, two evaluations with `python -m srvp evaluate`:
- test: the paper's protocol, best of 100 samples on the first 1,000 official
  test videos (5 + 20 frames);
- long: best of 100 samples over 95 predicted frames, on the first
  --long-videos videos of the official test-set generator run for 100 frames
  (`python -m srvp data mmnist-testset --seq-len 100`): the official test set
  has 25 frames.
The deterministic run: one sample, 5 + 95 frames, the first --det-videos videos
of the official deterministic test set (the paper's protocol for that set).

The 5 + 20 test (and the deterministic one) writes the run's own results.json,
shipped with it; the long evaluations stay in WORK. A stopped script resumes at
the next missing file. A run whose per-video scores an earlier call left in
--out/per_video.npz, with the same numbers of videos, is not evaluated again
(adding a run costs its own evaluations only); --fresh evaluates every run.
Then it writes book/runs/ablation/table.json (summaries with 95 %
intervals, paired video-by-video differences with the full model, per-frame
mean curves) and per_video.npz beside it (the per-video scores every number of
table.json is computed from).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from srvp.evaluate import summarize
from srvp.fileio import atomic_file, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
FULL = "cpu"
VARIANTS = {"cpu": "full model", "cpu_direct": "direct dynamics",
            "cpu_nocontent": "no content variable"}
DETERMINISTIC = "cpu_mmnist"
METRICS = ("psnr", "ssim")
LONG_FRAMES = 100  # 5 conditioning + 95 predicted
COUNTS = (("--n-videos", 1000, "first official test videos of the 5 + 20 test"),
          ("--long-videos", 100, "videos of the 5 + 95 test, best of 100"),
          ("--det-videos", 1000, "deterministic test videos, one sample"))
FOLDERS = (("--runs", "", "folder holding the run folders"),
           ("--out", "ablation", "folder for table.json and per_video.npz"))


def _srvp(*args: str, cwd=None) -> None:
    cmd = [sys.executable, "-m", "srvp", *args]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=cwd)


def _evaluate(run: Path, out: Path, data_dir: Path, *extra: str) -> None:
    """``srvp evaluate`` run from the runs' parent folder, so that the results
    name the run as ``runs/<name>``, never by a local path."""
    if not out.exists():
        _srvp("evaluate", f"{run.parent.name}/{run.name}", "--data-dir",
              str(data_dir.resolve()), "--no-lpips", "--keep-samples", "0",
              "--release-memory", "--out", str(out.resolve()), *extra,
              cwd=run.parent.parent)


def _scores(path: Path, n_videos: int, n_samples: int) -> dict:
    """Per-video and per-frame scores of one evaluation file, checked against
    the protocol asked."""
    res = json.loads(path.read_text())
    if res["protocol"]["n_samples"] != n_samples or \
            res["protocol"].get("amp", "off") != "off" or \
            len(res["metrics"]["psnr"]["per_video"]) != n_videos:
        raise SystemExit(f"{path} was made with another protocol: remove it")
    return {f"{m}{part}": np.asarray(res["metrics"][m][key], dtype=np.float64)
            for m in METRICS for part, key in (("", "per_video"),
                                               ("_frames", "per_frame"))}


def _long_data(work: Path, args) -> Path:
    """The official test-set generator run for 100 frames, first videos only."""
    folder = work / f"testset_{LONG_FRAMES}"
    if not folder.exists():
        _srvp("data", "mmnist-testset", "--data-dir", str(args.data_dir), "--seq-len",
              str(LONG_FRAMES), "--num-videos", str(args.long_videos), "--no-progress",
              "--out", str(folder))
    return folder


def _run_scores(name: str, work: Path, args) -> dict:
    run = args.runs / name
    if name == DETERMINISTIC:
        out = run / "results.json"
        _evaluate(run, out, args.data_dir, "--n-samples", "1", "--nt-gen",
                  str(LONG_FRAMES), "--n-videos", str(args.det_videos))
        return {f"det_{k}": v for k, v in
                _scores(out, args.det_videos, 1).items()}
    test, long = run / "results.json", work / f"{name}_long.json"
    _evaluate(run, test, args.data_dir, "--n-videos", str(args.n_videos))
    _evaluate(run, long, _long_data(work, args), "--nt-gen", str(LONG_FRAMES),
              "--n-videos", str(args.long_videos))
    return {**_scores(test, args.n_videos, 100),
            **{f"long_{k}": v for k, v in
               _scores(long, args.long_videos, 100).items()}}


def _previous(out: Path, protocol: dict) -> Tuple[Dict[str, dict], Optional[dict]]:
    """The per-video scores by run, and the blank frame's long scores, that an
    earlier call wrote in ``out`` with the same ``protocol`` (else nothing)."""
    npz, tab = out / "per_video.npz", out / "table.json"
    if not (npz.is_file() and tab.is_file()):
        return {}, None
    info = json.loads(tab.read_text())
    if {k: info["protocol"].get(k) for k in protocol} != protocol:
        return {}, None
    runs: Dict[str, dict] = {}
    with np.load(npz) as z:
        for key in z.files:
            run, name = key.split("/", 1)
            runs.setdefault(run, {})[name] = z[key]
    return runs, info.get("long_blank")


def _curve(frames: np.ndarray) -> dict:
    """Per-frame mean and 95 % half-width over videos of (N, T) scores."""
    frames = np.where(np.isfinite(frames), frames, np.nan)  # a perfect frame
    n = np.isfinite(frames).sum(0)
    return {"mean": np.nanmean(frames, 0).round(4).tolist(),
            "ci95": (1.96 * np.nanstd(frames, 0) / np.sqrt(n)).round(4).tolist()}


def table(scores: dict) -> dict:
    """table.json's rows from the per-video scores of every run."""
    rows = []
    for name, s in scores.items():
        row = {"run": name, "variant": VARIANTS.get(name, "deterministic")}
        if name == DETERMINISTIC:
            row.update({m: summarize(s[f"det_{m}"]) for m in METRICS})
            row["curves"] = {m: _curve(s[f"det_{m}_frames"]) for m in METRICS}
        else:
            row.update({m: summarize(s[m]) for m in METRICS})
            row["long"] = {m: summarize(s[f"long_{m}"]) for m in METRICS}
            row["curves"] = {m: _curve(s[f"long_{m}_frames"]) for m in METRICS}
            if name != FULL and FULL in scores:
                row["minus_full"] = {m: summarize(s[m] - scores[FULL][m])
                                     for m in METRICS}
                row["long_minus_full"] = {
                    m: summarize(s[f"long_{m}"] - scores[FULL][f"long_{m}"])
                    for m in METRICS}
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=os.environ.get("SRVP_MNIST_DIR"),
                   help="the MNIST test IDX files (default: $SRVP_MNIST_DIR)")
    p.add_argument("--work", type=Path, required=True,
                   help="folder for each evaluation's file (kept, for resuming)")
    for flag, default, what in COUNTS:
        p.add_argument(flag, type=int, default=default,
                       help=f"{what} (default {default})")
    for flag, default, what in FOLDERS:
        p.add_argument(flag, type=Path, default=ROOT / "book" / "runs" / default,
                       help=f"{what} (default: book/runs/{default})")
    p.add_argument("--fresh", action="store_true",
                   help="evaluate every run, even one whose scores --out holds")
    args = p.parse_args()
    if args.data_dir is None:
        p.error("pass --data-dir MNIST_DIR or set $SRVP_MNIST_DIR")
    args.work.mkdir(parents=True, exist_ok=True)
    protocol = {"n_videos": args.n_videos, "long_videos": args.long_videos,
                "long_frames": LONG_FRAMES, "det_videos": args.det_videos,
                "n_samples": 100, "seed": 1}
    previous, blank = ({}, None) if args.fresh else _previous(args.out, protocol)
    scores = {}
    for name in (*VARIANTS, DETERMINISTIC):
        if not (args.runs / name / "model.pt").is_file():
            print(f"{name}: no run folder {args.runs / name}, left out", flush=True)
        elif name in previous:
            print(f"{name}: scores of {args.out / 'per_video.npz'} kept", flush=True)
            scores[name] = previous[name]
        else:
            scores[name] = _run_scores(name, args.work, args)
    if FULL not in scores:
        raise SystemExit(f"the full model's run {args.runs / FULL} is missing")
    long_full = args.work / f"{FULL}_long.json"
    if long_full.exists() or blank is None:  # the blank frame on the long videos
        blank = json.loads(long_full.read_text())["reference"]["blank"]
    info = {"protocol": {**protocol, "made_by": "python scripts/ablation.py"},
            "rows": table(scores), "long_blank": blank}
    atomic_write_text(args.out / "table.json", json.dumps(info, indent=1) + "\n")
    with atomic_file(args.out / "per_video.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{f"{run}/{k}": v for run, s in scores.items()
                                  for k, v in s.items()})
    for row in info["rows"]:
        diff = row.get("minus_full", {}).get("psnr")
        print(f"{row['run']:>14s}: PSNR {row['psnr']['mean']:.3f} ± "
              f"{row['psnr']['ci95']:.3f}, SSIM {row['ssim']['mean']:.4f}"
              + (f", minus full {diff['mean']:+.3f} ± {diff['ci95']:.3f} dB"
                 if diff else ""))
    print(f"wrote {args.out / 'table.json'} and per_video.npz")


if __name__ == "__main__":
    main()
