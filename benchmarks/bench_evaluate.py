"""Evaluation speed: a re-statement of the official per-sample test loop, built
from this package's modules, against `srvp.evaluate`; it shows where the time
goes (FLOPs per frame, metrics alone). For the official code itself, see
``bench_official.py``.

Both run the same model (``smmnist`` preset, untrained weights: the cost does not
depend on them) on the same videos, with PSNR and SSIM per sample and the running
best/worst selection. The official loop re-encodes the conditioning frames and
decodes their reconstructions for every sample; ``evaluate`` encodes once and
decodes only predicted frames, in batched passes, with BatchNorm folded into the
decoder's convolutions (``Decoder.forward(fused=True)``). The table also gives the
FLOPs per generated frame of both paths (``torch.utils.flop_counter``) and the time
of the metrics alone, which both totals include.

Usage: python benchmarks/bench_evaluate.py [--videos 16] [--samples 100]
"""
from __future__ import annotations

import argparse
import time

import torch

from srvp import SRVP, preset
from srvp.bench import gflop, official_samples, synchronize
from srvp.evaluate import Protocol, evaluate
from srvp.metrics import psnr, ssim


@torch.no_grad()
def official_test_loop(model, x, nt_cond: int, n_samples: int):
    """test.py restated: one sample at a time (:func:`srvp.bench.official_samples`),
    metrics per sample, running best."""
    target = x[nt_cond:]
    best = {"psnr": None, "ssim": None}
    for pred in official_samples(model, x[:nt_cond], len(target), n_samples):
        for name, fn in (("psnr", psnr), ("ssim", ssim)):
            v = fn(pred, target).mean(0)
            best[name] = v if best[name] is None else torch.maximum(best[name], v)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = preset("smmnist")
    model = SRVP(cfg).eval().to(args.device)
    x = torch.rand(cfg.nt_gen, args.videos, 1, 64, 64, device=args.device)
    nt_cond, nt_pred = cfg.nt_cond, cfg.nt_gen - cfg.nt_cond
    frames = args.videos * args.samples * nt_pred

    def ours():
        evaluate(model, [x], Protocol(nt_cond, nt_pred, args.samples), progress=False)

    def official():
        official_test_loop(model, x, nt_cond, args.samples)

    rows = []
    for name, fn in (("official loop", official), ("srvp.evaluate", ours)):
        synchronize()
        t = time.perf_counter()
        fn()
        synchronize()
        rows.append((name, time.perf_counter() - t))
    # FLOPs on one video: the official loop costs the same for every sample; ours
    # shares the encoding of the conditioning frames among the samples of a video
    f_off = gflop(lambda: official_test_loop(model, x[:, :1], nt_cond, 1)) / nt_pred
    f_ours = gflop(lambda: model.predict(x[:nt_cond, :1], nt_pred, args.samples)) \
        / (args.samples * nt_pred)
    # the metrics alone, on as many frames as both paths score
    pred = torch.rand(nt_pred, args.videos, 1, 64, 64, device=args.device)
    synchronize()
    t = time.perf_counter()
    for _ in range(args.samples):
        psnr(pred, x[nt_cond:]), ssim(pred, x[nt_cond:])
    synchronize()
    t_metrics = time.perf_counter() - t
    print(f"{args.videos} videos x {args.samples} samples x {nt_pred} frames, "
          f"{args.device}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'path':16s} {'total (s)':>10s} {'ms/frame':>9s} {'GFLOP/frame':>12s}")
    for (name, t), f in zip(rows, (f_off, f_ours)):
        print(f"{name:16s} {t:10.1f} {1e3 * t / frames:9.3f} {f:12.3f}")
    print(f"{'metrics alone':16s} {t_metrics:10.1f} {1e3 * t_metrics / frames:9.3f} "
          f"{'-':>12s}   (PSNR + SSIM, included in both totals)")
    print(f"speed-up: {rows[0][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
