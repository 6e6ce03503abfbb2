"""Peak memory and time of a long evaluation, with and without the release of
the free heap after each batch (``evaluate --release-memory``, glibc only).

Each mode runs in its own process: ``srvp.evaluate.evaluate`` on the first
``--videos`` Moving MNIST test videos, ``--samples`` samples each, keeping no
sample arrays (``keep_samples=0``), so that whatever grows with the number of
batches is heap that ``malloc`` did not give back. The model is untrained (the
``cpu`` preset's networks): memory and time do not depend on the weights.

Usage: SRVP_MNIST_DIR=MNIST_DIR python benchmarks/bench_eval_memory.py
           [--videos 1600] [--samples 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
import srvp.evaluate as ev
from srvp import SRVP, preset
from srvp.cli.evaluate import release_free_memory
from srvp.data.registry import test_batches
fix, data = sys.argv[1] == "1", sys.argv[5]
videos, samples, threads = map(int, sys.argv[2:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = preset("cpu")
model = SRVP(cfg).eval()
batches = test_batches(cfg, data, cfg.nt_gen, 16, videos)
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB
before = peak()
start = time.perf_counter()
ev.evaluate(model, batches, ev.Protocol(cfg.nt_cond, cfg.nt_gen - cfg.nt_cond, samples),
            progress=False, keep_samples=0,
            after_batch=release_free_memory if fix else None)
print(json.dumps({"before": before, "peak": peak(),
                  "seconds": time.perf_counter() - start}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=1600)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=os.environ.get("SRVP_MNIST_DIR"))
    args = p.parse_args()
    if not args.data_dir:
        sys.exit("error: pass --data-dir or set SRVP_MNIST_DIR (MNIST IDX files)")
    print(f"{args.videos} test videos x {args.samples} samples, batches of 16, "
          f"{args.threads} threads, no sample arrays kept")
    print(f"{'heap release':16s} {'GiB before':>10s} {'peak GiB':>9s} "
          f"{'growth MB/batch':>15s} {'seconds':>8s}")
    batches = -(-args.videos // 16)
    for fix in (False, True):
        out = subprocess.run([sys.executable, "-c", CHILD, str(int(fix)),
                              str(args.videos), str(args.samples), str(args.threads),
                              args.data_dir], capture_output=True, text=True,
                             check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        growth = (r["peak"] - r["before"]) * 1024 / batches
        label = "malloc_trim" if fix else "none"
        print(f"{label:16s} {r['before']:10.2f} {r['peak']:9.2f} {growth:15.1f} "
              f"{r['seconds']:8.1f}")


if __name__ == "__main__":
    main()
