"""Append a shipped run's row to book/runs/history.csv, computed from its files.

Usage:
  python scripts/history_row.py RUN --parent PARENT --changes "--set k=v ..." \
      --machine "avx512"

RUN and PARENT are folders of book/runs (PARENT empty for a root, which then
needs --preset). Every number comes from the run's log.jsonl, run.json and
results.json, and, for the paired differences, from the parent's and svg_cpu's
results.json on the videos both evaluated, when both score the same test (a
deterministic run is scored with its own protocol: no paired columns; the
columns are described in book/runs/README.md). A run that already has a row is refused.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

from srvp.config import Config
from srvp.evaluate import summarize
from srvp.fileio import atomic_write_text
from srvp.run_folder import read_log

RUNS = Path(__file__).resolve().parents[1] / "book" / "runs"


def _paired(run: Path, other: Path, metric: str):
    """Mean and 95 % half-width of run minus other, video by video, as printed
    in the table (3 decimals for PSNR, 4 for SSIM)."""
    a, b = (np.asarray(json.loads((p / "results.json").read_text())["metrics"][metric]
                       ["per_video"], dtype=np.float64) for p in (run, other))
    n = min(len(a), len(b))
    s = summarize(a[:n] - b[:n])
    digits = 3 if metric == "psnr" else 4
    return f"{s['mean']:.{digits}f}", f"{s['ci95']:.{digits}f}"


def _test_of(cfg: Config) -> tuple:
    """What a run's results.json scores: runs are paired on the same test only."""
    return cfg.dataset, cfg.deterministic


def row(run: Path, parent: str, preset: str, changes: str, machine: str) -> dict:
    cfg = Config.load(run / "config.json")
    log = read_log(run)
    amp = json.loads((run / "run.json").read_text())["options"]["amp"]
    m = json.loads((run / "results.json").read_text())["metrics"]
    n = cfg.n_iter
    tail = {t: np.mean([r[t] for r in log["train"] if r["step"] > n - 500])
            for t in ("kl_y", "kl_z")}
    early = np.mean([r["kl_z"] for r in log["train"] if 900 < r["step"] <= 1100])
    frames = np.mean(m["psnr"]["per_frame"], axis=0)
    out = {"run": run.name, "parent": parent, "preset": preset, "changes": changes,
           "amp": amp, "steps": n, "batch": cfg.batch_size,
           "train_minutes": f"{log['train'][-1]['time'] / 60:.1f}", "machine": machine,
           "kl_y": f"{tail['kl_y']:.1f}", "kl_z": f"{tail['kl_z']:.1f}",
           "kl_z_1k": f"{early:.2f}",
           "val_psnr": f"{max(r['val_psnr'] for r in log['val']):.2f}",
           "n_videos": m["psnr"]["n"],
           "psnr": f"{m['psnr']['mean']:.3f}", "psnr_ci95": f"{m['psnr']['ci95']:.3f}",
           "ssim": f"{m['ssim']['mean']:.4f}", "ssim_ci95": f"{m['ssim']['ci95']:.4f}",
           "psnr_first": f"{frames[0]:.2f}", "psnr_last": f"{frames[-1]:.2f}"}
    if parent and _test_of(Config.load(RUNS / parent / "config.json")) == _test_of(cfg):
        out["dpsnr"], out["dpsnr_ci95"] = _paired(run, RUNS / parent, "psnr")
        out["dssim"], out["dssim_ci95"] = _paired(run, RUNS / parent, "ssim")
    if not cfg.deterministic and (RUNS / "svg_cpu" / "results.json").exists():
        out["dpsnr_svg"], out["dpsnr_svg_ci95"] = _paired(run, RUNS / "svg_cpu", "psnr")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="folder name under book/runs")
    p.add_argument("--parent", default="", help="the run it changes (a row above)")
    p.add_argument("--preset", default="", help="a root's preset (or the parent's)")
    p.add_argument("--changes", default="",
                   help="the --set/--amp options that differ from the parent")
    p.add_argument("--machine", required=True,
                   help="avx2, avx512 or amx, and whether it was shared")
    args = p.parse_args()
    path = RUNS / "history.csv"
    text = path.read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    if any(r["run"] == args.run for r in rows):
        raise SystemExit(f"{args.run} has a row already: remove it first")
    new = row(RUNS / args.run, args.parent, args.preset, args.changes, args.machine)
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n").writerow(
        {k: new.get(k, "") for k in rows[0]})
    atomic_write_text(path, text + buf.getvalue())
    print(buf.getvalue(), end="")


if __name__ == "__main__":
    main()
