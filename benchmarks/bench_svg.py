"""Cost of SRVP against the SVG-LP baseline, measured in one run on one machine.

For each pair of presets (the paper's sizes, ``smmnist`` / ``svg``, and the
sizes trained on a CPU for the book, ``cpu`` / ``svg_cpu``), the table gives:

- one training step at the same batch size (forward, loss, backward, Adam), in
  seconds and in GFLOP (``torch.utils.flop_counter``);
- the cost per generated frame of ``predict`` (16 videos, 4 samples, 5
  conditioning + 20 predicted frames), in milliseconds and GFLOP.

SVG encodes every frame it predicts to feed it back to its LSTMs; SRVP decodes
its latent states and never re-encodes them, which is where most of the gap in
generation comes from. Times are medians of ``--reps`` runs after a warm-up
(:func:`srvp.bench.costs`, which book ch. 9 runs on the book's two models).

Usage: python benchmarks/bench_svg.py [--threads 2] [--batch 16] [--reps 3]
"""
from __future__ import annotations

import argparse

import torch

from srvp import preset
from srvp.bench import costs
from srvp.model_registry import build_model

PAIRS = [("smmnist", "svg"), ("cpu", "svg_cpu")]


def measure(name: str, batch: int, reps: int, videos: int = 16, samples: int = 4,
            nt_pred: int = 20):
    """(step s, step GFLOP, ms per generated frame, GFLOP per generated frame)."""
    cfg = preset(name, batch_size=batch)
    model = build_model(cfg).eval()
    clip = torch.rand(cfg.seq_len, batch, cfg.nc, 64, 64)
    x_cond = torch.rand(cfg.nt_cond, videos, cfg.nc, 64, 64)
    return costs(model, cfg, clip, x_cond, nt_pred, samples, reps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="training batch size")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--pairs", nargs="+", default=[f"{a}/{b}" for a, b in PAIRS],
                   help="SRVP/SVG preset pairs, e.g. cpu/svg_cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, training batch "
          f"{args.batch}; generation: 16 videos x 4 samples x 20 frames; median of "
          f"{args.reps}")
    head = (f"{'preset':9s} {'step (s)':>9s} {'step GFLOP':>11s} {'ms/frame':>9s} "
            f"{'GFLOP/frame':>12s}")
    for pair in args.pairs:
        srvp_name, svg_name = pair.split("/")
        rows = {n: measure(n, args.batch, args.reps) for n in (srvp_name, svg_name)}
        print(head)
        for n, (ts, fs, tg, fg) in rows.items():
            print(f"{n:9s} {ts:9.2f} {fs:11.1f} {tg:9.2f} {fg:12.3f}")
        a, b = rows[srvp_name], rows[svg_name]
        print(f"SVG / SRVP: training step {b[0] / a[0]:.2f}x time, "
              f"{b[1] / a[1]:.2f}x FLOPs; generation {b[2] / a[2]:.2f}x time, "
              f"{b[3] / a[3]:.2f}x FLOPs\n")


if __name__ == "__main__":
    main()
