"""The train-Δt × test-Δt table of book ch. 6, from the two shipped runs.

Usage:
  python scripts/dt_table.py --data-dir MNIST_DIR --work runs/dt_table

For each cell (a model trained at Δt = 1 or 1/2, tested at Δt = 1, 1/2 or 1/4):
the paper's protocol (best of 100 samples) on the first 1,000 official test
videos, run as `python -m srvp evaluate ... --n-euler-steps K --out
WORK/RUN_kK.json` (about 8 minutes each on two CPU cores), and the in-between
measures of `srvp.metrics.inbetween.inbetween_eval` (5 samples per video).
Each cell's files stay in WORK, so a stopped run resumes at the next missing
cell. Then it writes book/runs/dt_table/table.json (summaries with 95 %
intervals and paired video-by-video differences) and per_video.npz beside it
(the per-video scores every summary is computed from).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from srvp.data.registry import test_batches
from srvp.evaluate import summarize
from srvp.fileio import atomic_file, atomic_write_text
from srvp.metrics.inbetween import inbetween_eval
from srvp.run_folder import load_official

ROOT = Path(__file__).resolve().parents[1]
RUNS = {1: "cpu", 2: "cpu_dt2"}  # training Euler steps per frame -> run folder
TESTED = (1, 2, 4)  # test Euler steps per frame
METRICS = ("psnr", "ssim")
INBETWEEN = ("ink_error", "centroid_error")


def _label(k: int) -> str:
    return "1" if k == 1 else f"1/{k}"


def _evaluate(run: Path, k: int, out: Path, args) -> None:
    cmd = [sys.executable, "-m", "srvp", "evaluate", str(run), "--data-dir",
           str(args.data_dir), "--n-euler-steps", str(k), "--n-videos",
           str(args.n_videos), "--n-samples", str(args.n_samples), "--no-lpips",
           "--keep-samples", "0", "--release-memory", "--out", str(out)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _inbetween(run: Path, k: int, out: Path, args) -> None:
    model, cfg = load_official(run)
    nt_cond, nt_pred = cfg.nt_cond, cfg.nt_gen - cfg.nt_cond
    batches = test_batches(cfg, args.data_dir, cfg.nt_gen, 16, args.n_videos)
    print(f"in-between measures: {run.name}, dt = 1/{k}", flush=True)
    scores = inbetween_eval(model, batches, nt_cond, nt_pred, k,
                            n_samples=args.inbetween_samples)
    with atomic_file(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **scores)


def _cell(train_k: int, test_k: int, work: Path, args) -> dict:
    """Per-video arrays of one cell, computed if WORK lacks them."""
    run = ROOT / "book" / "runs" / RUNS[train_k]
    stem = work / f"{RUNS[train_k]}_k{test_k}"
    if not stem.with_suffix(".json").exists():
        _evaluate(run, test_k, stem.with_suffix(".json"), args)
    if not stem.with_suffix(".npz").exists():
        _inbetween(run, test_k, stem.with_suffix(".npz"), args)
    res = json.loads(stem.with_suffix(".json").read_text())
    if res["protocol"]["n_samples"] != args.n_samples or \
            res["protocol"].get("amp", "off") != "off" or \
            len(res["metrics"]["psnr"]["per_video"]) != args.n_videos:
        raise SystemExit(f"{stem}.json was made with another protocol: remove it")
    arrays = {m: np.asarray(res["metrics"][m]["per_video"]) for m in METRICS}
    with np.load(stem.with_suffix(".npz")) as z:
        arrays.update({n: z[n] for n in z.files})
    return arrays


def _name(train_k: int, test_k: int) -> str:
    return f"train_{RUNS[train_k]}_test_k{test_k}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=os.environ.get("SRVP_MNIST_DIR"),
                   help="MNIST test IDX files or the test-set .npz "
                        "(default: $SRVP_MNIST_DIR)")
    p.add_argument("--work", type=Path, required=True,
                   help="folder for each cell's evaluation (kept, for resuming)")
    p.add_argument("--n-videos", type=int, default=1000,
                   help="first official test videos scored (default 1000)")
    p.add_argument("--n-samples", type=int, default=100,
                   help="samples per video of the best-of-N scores (default 100)")
    p.add_argument("--inbetween-samples", type=int, default=5,
                   help="samples per video of the in-between measures (default 5)")
    p.add_argument("--out", type=Path, default=ROOT / "book" / "runs" / "dt_table",
                   help="folder for table.json and per_video.npz")
    args = p.parse_args()
    if args.data_dir is None:
        p.error("pass --data-dir MNIST_DIR or set $SRVP_MNIST_DIR")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cells = {(tr, te): _cell(tr, te, args.work, args) for tr in RUNS for te in TESTED}

    table = []
    for (tr, te), a in cells.items():
        row = {"cell": _name(tr, te), "train_dt": _label(tr), "test_dt": _label(te),
               **{m: summarize(a[m]) for m in METRICS},
               "inbetween": {n: summarize(a[n]) for n in INBETWEEN},
               "truth_two_frames": {n: summarize(a[f"truth_{n}"]) for n in INBETWEEN}}
        if tr != 1:  # paired with the model trained at dt = 1, same test dt
            row["minus_train_dt1"] = {m: summarize(a[m] - cells[1, te][m])
                                      for m in METRICS}
        if te != tr:  # paired with the same model at its training dt
            row["minus_own_train_dt"] = {m: summarize(a[m] - cells[tr, tr][m])
                                         for m in METRICS}
        table.append(row)
    info = {"protocol": {"n_videos": args.n_videos, "n_samples": args.n_samples,
                         "inbetween_samples": args.inbetween_samples, "seed": 1,
                         "runs": {_label(k): f"runs/{r}" for k, r in RUNS.items()},
                         "made_by": "python scripts/dt_table.py"},
            "cells": table}
    atomic_write_text(args.out / "table.json", json.dumps(info, indent=1) + "\n")
    with atomic_file(args.out / "per_video.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{f"{_name(tr, te)}/{n}": v.astype(np.float64)
                                  for (tr, te), a in cells.items()
                                  for n, v in a.items()})
    for row in table:
        print(f"train {row['train_dt']:>3s} test {row['test_dt']:>3s}: "
              f"PSNR {row['psnr']['mean']:.3f} ± {row['psnr']['ci95']:.3f}, "
              f"SSIM {row['ssim']['mean']:.4f} ± {row['ssim']['ci95']:.4f}, "
              f"ink {row['inbetween']['ink_error']['mean']:.4f}, "
              f"centroid {row['inbetween']['centroid_error']['mean']:.3f} px")
    print(f"wrote {args.out / 'table.json'} and per_video.npz")


if __name__ == "__main__":
    main()
