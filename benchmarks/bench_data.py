"""Throughput of the Moving MNIST training generator on one CPU core, against a
re-statement of the official generator built here (for the official code itself,
see ``bench_official.py``).

Sequences per second (15 frames, 2 digits, 64x64) of

- ``official getitem``: a re-statement of the official generator, one sequence at
  a time (float32 canvas, one Python trajectory per digit, global NumPy RNG);
- ``official getitem+collate``: the same, batched by a re-statement of the
  official ``collate_fn`` into (T, B, C, H, W) float tensors in [0, 1];
- ``srvp generate``: :meth:`srvp.data.MovingMNIST.generate` on whole chunks;
- ``srvp getitem+collate``: item by item through ``__getitem__`` then
  :func:`srvp.data.collate_fn`, i.e. what a single-process DataLoader does;
- ``srvp trainer batches``: :class:`srvp.data.batches.StepBatches`, the float
  batches the trainer reads, one step after another.

Each candidate is timed in several interleaved rounds and its best round is kept,
which makes the ratios robust to other load on the machine. Speed-ups compare
like with like (generation with generation, batches with batches).

Usage: ``python benchmarks/bench_data.py [--data-dir DIR] [--rounds R]``. Without
MNIST files, random 28x28 sprites are used (the speed does not depend on them).
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import time

import numpy as np
import torch

from srvp.data import MovingMNIST, collate_fn, load_mnist
from srvp.data.batches import StepBatches
from srvp.data.mnist_idx import MNISTNotFoundError
from srvp.data.moving_mnist_testset import official_trajectory

SEQ_LEN = 15


def official_style_sequence(digits, seq_len=SEQ_LEN, num_digits=2, size=64):
    """One video the way the official ``__getitem__`` builds it (baseline)."""
    x = np.zeros((seq_len, size, size), dtype=np.float32)
    for _ in range(num_digits):
        img = digits[np.random.randint(len(digits))]
        traj = official_trajectory(np.random, seq_len)  # global legacy RNG
        for t in range(seq_len):
            row, col = traj[t, 0], traj[t, 1]
            x[t, row:row + img.shape[0], col:col + img.shape[1]] += img
    x[x > 255] = 255
    return x.astype(np.uint8)


def official_style_collate(videos):
    """Batch uint8 videos (T, H, W) the way the official ``collate_fn`` does."""
    seq_len, height, width = videos[0].shape
    batch = torch.zeros((seq_len, len(videos), 1, height, width), dtype=torch.uint8)
    for i, video in enumerate(videos):
        batch[:, i, 0] += torch.from_numpy(video)
    return batch.float() / 255


def best_rates(candidates, rounds, seconds):
    """Best sequences/s of each ``(step, sequences_per_step)`` over interleaved rounds.

    Each round runs every candidate for about ``seconds``.
    """
    best = [0.0] * len(candidates)
    for step, _ in candidates:
        step()  # warm-up
    for _ in range(rounds):
        for k, (step, per_step) in enumerate(candidates):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                step()
                count += per_step
            best[k] = max(best[k], count / (time.perf_counter() - start))
    return best


def load_digits(data_dir):
    """MNIST training digits, or random sprites when no files are available."""
    try:
        return load_mnist(data_dir, split="train")[0], "MNIST training digits"
    except MNISTNotFoundError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8), "random sprites"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None,
                        help="MNIST IDX folder (default: $SRVP_MNIST_DIR)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timing rounds (the best is kept)")
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="time per candidate and round")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    digits, source = load_digits(args.data_dir)
    np.random.seed(0)
    ds = MovingMNIST(digits, seq_len=SEQ_LEN, seed=0)
    bsz = args.batch_size
    steps, counter = StepBatches(ds, bsz, seed=0, rank=0, n_steps=10**9), iter(
        range(10**9))
    candidates = {
        "official getitem": (lambda: official_style_sequence(digits), 1),
        "official getitem+collate": (lambda: official_style_collate(
            [official_style_sequence(digits) for _ in range(bsz)]), bsz),
        "srvp generate": (lambda: ds.generate(ds.chunk_size), ds.chunk_size),
        "srvp getitem+collate": (lambda: collate_fn([ds[i] for i in range(bsz)]),
                                 bsz),
        "srvp trainer batches": (lambda: steps[next(counter)], bsz),
    }
    rates = dict(zip(candidates, best_rates(list(candidates.values()), args.rounds,
                                            args.seconds)))
    baseline = {"official getitem": "official getitem",
                "official getitem+collate": "official getitem+collate",
                "srvp generate": "official getitem",
                "srvp getitem+collate": "official getitem+collate",
                "srvp trainer batches": "official getitem+collate"}
    print(f"Moving MNIST, {SEQ_LEN} frames, 2 digits, 64x64, one thread; {source}, "
          f"batch {bsz}, chunk_size {ds.chunk_size}")
    print(f"{'generator':<26} {'sequences/s':>12} {'speed-up':>9}")
    for name, value in rates.items():
        print(f"{name:<26} {value:>12,.0f} {value / rates[baseline[name]]:>8.1f}x")


if __name__ == "__main__":
    main()
