"""Timing and FLOP counts shared by the benchmarks (``benchmarks/``) and book
ch. 9, and the official per-sample test loop restated with this package's
modules (the baseline of ``bench_model.py`` and ``bench_evaluate.py``; the
official code itself is timed by ``benchmarks/bench_official.py``)."""
from __future__ import annotations

import copy
import statistics
import time
from typing import Callable, Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize() -> None:
    """Wait for the GPU's queued work, if CUDA is in use (a timer must)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], reps: int) -> float:
    """Median wall time of ``fn()`` over ``reps`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gflop(fn: Callable[[], object]) -> float:
    """Floating-point operations of one call of ``fn()``, in billions
    (``torch.utils.flop_counter``: matrix products and convolutions)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def step_gflop(cfg, batch: int) -> float:
    """GFLOP of one training step (forward, loss, backward) of ``cfg`` at batch
    ``batch``, counted on the meta device (shapes only, nothing computed). A model
    whose step reads a value (SVG-LP) is counted on the CPU at batch 2 instead
    (BatchNorm needs two), times ``batch / 2``."""
    from .model_registry import build_model, compute_loss

    def count(n: int) -> float:
        model = build_model(cfg)
        x = torch.rand(cfg.seq_len, n, cfg.nc, cfg.nx, cfg.nx)
        return gflop(lambda: compute_loss(model(x), x, cfg).loss.backward())

    try:
        with torch.device("meta"):
            return count(batch)
    except (RuntimeError, NotImplementedError):  # e.g. .item() of a meta tensor
        return batch / 2 * count(2)


def costs(model, cfg, clip: torch.Tensor, x_cond: torch.Tensor, nt_pred: int,
          n_samples: int, reps: int) -> tuple[float, float, float, float]:
    """What a model costs: (training step s, step GFLOP, ms per generated frame,
    GFLOP per generated frame).

    The training step (forward, loss, backward, Adam) runs on a copy of the
    model, on ``clip`` (T, B, C, H, W); generation is ``model.predict`` of
    ``n_samples`` futures of ``nt_pred`` frames for the videos of ``x_cond``
    (nt_cond, B, C, H, W). Times are :func:`median_seconds` of ``reps`` calls.
    """
    from .model_registry import compute_loss

    net = copy.deepcopy(model).train()  # the measured model stays untouched
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    def step():
        loss = compute_loss(net(clip), clip, cfg).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def generate():
        model.predict(x_cond, nt_pred, n_samples)

    n_frames = x_cond.shape[1] * n_samples * nt_pred
    return (median_seconds(step, reps), gflop(step),
            1e3 * median_seconds(generate, reps) / n_frames, gflop(generate) / n_frames)


@torch.no_grad()
def official_samples(model, x_cond: torch.Tensor, nt_pred: int,
                     n_samples: int) -> Iterator[torch.Tensor]:
    """The official test loop (``test.py``), restated with this package's SRVP:
    for each sample, run the model on the conditioning frames (re-encoding them
    and decoding their reconstructions), then generate and decode the future.

    Yields ``n_samples`` predictions (nt_pred, B, C, H, W) in [0, 1].
    """
    skips = model.encode(x_cond)[1]
    for _ in range(n_samples):
        rec = model(x_cond)
        y = model.generate(rec.y[-1], None, nt_pred + 1, model.cfg.n_euler_steps)[0]
        yield model.decode(rec.w, y[1:], skips).clamp(0, 1)
