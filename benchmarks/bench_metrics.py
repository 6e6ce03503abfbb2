"""CPU time of the frame metrics for a best-of-100 evaluation.

Target workload (SM-MNIST protocol): 16 test videos x 100 samples x 20
predicted frames of 1 x 64 x 64, i.e. 32,000 (prediction, ground truth) frame
pairs per metric. As in the evaluation loop, each metric is called once per
sample on a ``(20, 16, 1, 64, 64)`` batch.

By default only ``--samples 5`` samples are timed and the result is
extrapolated linearly to 100 samples (the cost is linear in the number of
frames); the table says which rows are measured and which extrapolated. Use
``--samples 100`` to time the full workload.

LPIPS runs with a **random AlexNet backbone** (the real weights cannot be
downloaded here). Its cost is the same as with the real backbone, but its
values are meaningless.

Usage: ``python benchmarks/bench_metrics.py [--samples N] [--repeats R]``.
Timings vary a lot when another process uses a core (see TOOLCHAIN notes on
2-core machines); the best of ``--repeats`` runs is reported.
"""

import argparse
import os
import time
import warnings

import torch

from srvp.metrics import load_lpips, lpips_distance, psnr, ssim

N_VIDEOS, N_FRAMES, SIZE, FULL_SAMPLES = 16, 20, 64, 100


def make_data(n_samples, seed=0):
    """Ground truth ``(20, 16, 1, 64, 64)`` and ``n_samples`` noisy predictions."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(N_FRAMES, N_VIDEOS, 1, SIZE, SIZE, generator=gen)
    noise = torch.randn(n_samples, *x.shape, generator=gen)
    return x, (x + 0.1 * noise).clamp(0, 1)


def time_metric(metric, x, samples, repeats):
    """Best wall time over ``repeats`` of scoring every sample against ``x``."""
    metric(samples[0], x)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            for x_hat in samples:
                metric(x_hat, x)
        best = min(best, time.perf_counter() - start)
    return best


def print_table(metrics, x, samples, repeats):
    """Time every metric with 1 and 2 torch threads; print a Markdown table."""
    pairs = len(samples) * N_VIDEOS * N_FRAMES
    scale = FULL_SAMPLES / len(samples)
    label = "measured" if scale == 1 else f"extrapolated x{scale:g}"
    print(f"| metric | threads | timed: {pairs} pairs | per 1k pairs ", end="")
    print(f"| 16 x 100 x 20 ({label}) |")
    print("| --- | --- | --- | --- | --- |")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, metric in metrics.items():
            seconds = time_metric(metric, x, samples, repeats)
            per_k = 1e3 * seconds / pairs
            print(f"| {name} | {threads} | {seconds:.2f} s | {per_k:.3f} s ", end="")
            print(f"| {seconds * scale:.1f} s |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="samples timed")
    parser.add_argument("--repeats", type=int, default=2, help="best of R runs")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-backbone warning, said below
        lpips_model = load_lpips(random_backbone=True)

    def lpips_random(x_hat, x):
        return lpips_distance(x_hat, x, lpips_model)

    metrics = {
        "PSNR": psnr,
        "SSIM": ssim,
        "LPIPS (random AlexNet backbone)": lpips_random,
    }
    x, samples = make_data(args.samples)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start; LPIPS uses a RANDOM backbone "
        f"(same cost as the real one, meaningless values)"
    )
    print_table(metrics, x, samples, args.repeats)


if __name__ == "__main__":
    main()
