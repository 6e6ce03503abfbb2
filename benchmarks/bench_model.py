"""Training-step and generation speed of the SRVP model on this machine.

Prints a table for the ``smmnist`` and ``kth`` presets at batch 16:

- one training step (forward, ELBO, backward, Adam);
- the time per generated frame when sampling futures of 20 frames for 16 videos,
  (a) as the official test loop does it (per sample: run the model on the
  conditioning frames, decoding their reconstructions, then generate and decode
  the future; :func:`srvp.bench.official_samples`) and (b) with
  :meth:`SRVP.predict` (encode once, batched samples). The official code itself:
  ``bench_official.py --only test``.

Usage: python benchmarks/bench_model.py [--threads 2] [--presets smmnist kth]
"""
from __future__ import annotations

import argparse

import torch

from srvp import SRVP, elbo_loss, preset
from srvp.bench import median_seconds, official_samples


def train_step_time(name: str, bsz: int, reps: int) -> float:
    cfg = preset(name, batch_size=bsz)
    model = SRVP(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = torch.rand(cfg.seq_len, bsz, cfg.nc, 64, 64)

    def step():
        loss = elbo_loss(model(x), x, cfg).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return median_seconds(step, reps)


@torch.no_grad()
def generation_times(name: str, bsz: int, n_samples: int, nt_pred: int, reps: int):
    cfg = preset(name)
    model = SRVP(cfg).eval()
    x_cond = torch.rand(cfg.nt_cond, bsz, cfg.nc, 64, 64)
    frames = n_samples * bsz * nt_pred
    t_off = median_seconds(
        lambda: torch.stack(list(official_samples(model, x_cond, nt_pred, n_samples))),
        reps)
    t_ours = median_seconds(lambda: model.predict(x_cond, nt_pred, n_samples), reps)
    return t_off / frames, t_ours / frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--presets", nargs="+", default=["smmnist", "kth"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--samples", type=int, default=4,
                   help="samples per video in the generation timing")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"generation: {args.samples} samples x 20 frames, median of {args.reps}")
    print(f"{'preset':8s} {'train step (s)':>15s} {'official gen (ms/frame)':>24s} "
          f"{'predict (ms/frame)':>19s} {'speed-up':>9s}")
    for name in args.presets:
        step = train_step_time(name, args.batch, args.reps)
        off, ours = generation_times(name, args.batch, args.samples, 20, args.reps)
        print(f"{name:8s} {step:15.2f} {1e3 * off:24.2f} {1e3 * ours:19.2f} "
              f"{off / ours:8.2f}x")


if __name__ == "__main__":
    main()
