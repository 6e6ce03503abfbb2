"""``python -m srvp evaluate``: the paper's protocol on a run or official folder."""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys
from functools import lru_cache
from pathlib import Path

import torch

_EPILOG = """examples:
  python -m srvp evaluate runs/cpu --data-dir MNIST_DIR --n-videos 1000
  python -m srvp evaluate OFFICIAL_XP_DIR --data-dir DATA --lpips-weights alexnet.pth

Moving MNIST: --data-dir is a folder with the test-set .npz (from `python -m srvp
data mmnist-testset`) or the MNIST test IDX files, from which the official test
set is rebuilt in memory. KTH: the folder holding svg_test_set_40.npz (`python -m
srvp data kth-testset`); Human3.6M: the folder holding test_set_53_8
(`human-testset`); BAIR: the folder holding processed/test (`bair-convert`).
LPIPS needs torchvision's AlexNet weights
(alexnet-owt-7be5be79.pth): pass --lpips-weights, put the file under
$TORCH_HOME/hub/checkpoints, or use --lpips-download where the internet is
reachable; --no-lpips skips it."""


def release_free_memory() -> bool:
    """Give the free pages of the C heap back to the system (glibc's
    ``malloc_trim(0)``); False where there is no such call (macOS, Windows,
    musl), where nothing happens.

    Why: glibc serves large blocks with ``mmap`` and returns them when freed,
    but raises that threshold each time such a block is freed; after a few
    batches PyTorch's tensors of a few MB come from the heap, whose freed pages
    stay with the process. Evaluating the Moving MNIST test set grew by about
    20 MB per batch of 16 videos that way, over 10 GB for all 5,000 videos
    (``benchmarks/bench_eval_memory.py`` measures it).
    """
    trim = _glibc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@lru_cache(maxsize=1)
def _glibc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # another C library (musl), or none
        return None


def _run(args: argparse.Namespace) -> int:
    from ..data.registry import test_batches
    from ..evaluate import Protocol, evaluate, format_table
    from ..run_folder import RESULTS, load_official, save_results

    try:
        model, cfg = load_official(args.run, checkpoint=args.checkpoint)
        nt_cond = cfg.nt_cond if args.nt_cond is None else args.nt_cond
        nt_gen = cfg.nt_gen if args.nt_gen is None else args.nt_gen
        protocol = Protocol(
            nt_cond, nt_gen - nt_cond,
            cfg.n_samples if args.n_samples is None else args.n_samples,
            dt=None if args.n_euler_steps is None else 1 / args.n_euler_steps,
            seed=args.seed)
        batches = test_batches(cfg, args.data_dir, nt_gen, args.batch_size,
                               args.n_videos)
        lpips_model = None
        if not args.no_lpips:
            from ..metrics.lpips import load_lpips

            lpips_model = load_lpips(args.lpips_weights,
                                     allow_download=args.lpips_download)
    except (FileNotFoundError, ValueError, ImportError) as err:
        hint = ("\nOn the command line: --lpips-weights PATH, --lpips-download or "
                "--no-lpips." if "LPIPS" in str(err) else "")
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    device = torch.device(args.device if args.device != "auto" else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    if lpips_model is not None:
        lpips_model.to(device)
    keep = None if args.i3d_weights or args.keep_samples < 0 else args.keep_samples
    res = evaluate(model, batches, protocol, lpips_model=lpips_model,
                   keep_samples=keep,
                   after_batch=release_free_memory if args.release_memory else None)
    if args.i3d_weights:
        from ..evaluate import add_fvd
        from ..metrics.i3d import load_i3d

        add_fvd(res, load_i3d(args.i3d_weights, device=device))
    res.model = {"folder": str(args.run), "checkpoint": args.checkpoint,
                 "dataset": cfg.dataset}
    out = Path(args.out) if args.out else Path(args.run) / RESULTS
    save_results(res, out)
    print(f"{res.metrics['psnr']['n']} test videos, {protocol.nt_cond} conditioning "
          f"+ {protocol.nt_pred} predicted frames")
    print(format_table(res))
    print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="best-of-N PSNR / SSIM / LPIPS on the official test set",
        description="Evaluate a run folder (or an official experiment folder) with "
                    "the paper's protocol: N samples per test video, the best chosen "
                    "per video and metric, mean over videos with a 95% interval, "
                    "beside the blank and last-frame reference predictors.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="folder with config.json and model.pt")
    p.add_argument("--data-dir", required=True, help="test data (see below)")
    p.add_argument("--checkpoint", default="model.pt",
                   help="weights file in the folder (model.pt or model_best.pt)")
    p.add_argument("--n-samples", type=int, help="samples per video (default: the "
                   "preset's, 100; 1 for deterministic Moving MNIST)")
    p.add_argument("--n-videos", type=int, help="evaluate the first N test videos")
    p.add_argument("--nt-cond", type=int, help="conditioning frames (default: preset)")
    p.add_argument("--nt-gen", type=int,
                   help="conditioning + predicted frames (default: preset)")
    p.add_argument("--n-euler-steps", type=int,
                   help="Euler steps per frame of the prediction (dt = 1/N; "
                        "default: the training value); as in the official test, the "
                        "conditioning frames keep the training step")
    p.add_argument("--batch-size", type=int, default=16,
                   help="test videos per batch (default 16, as the official test). "
                        "It sets how the random draws fall on the videos, so another "
                        "batch size gives other samples and scores that differ "
                        "within their 95%% interval")
    p.add_argument("--seed", type=int, default=1, help="test seed (official: 1)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--lpips-weights", help="path to alexnet-owt-7be5be79.pth")
    p.add_argument("--lpips-download", action="store_true",
                   help="let the lpips package download AlexNet (needs internet)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--i3d-weights", help="i3d_pretrained_400.pt: also compute FVD "
                   "(conditioning + one random sample against conditioning + "
                   "ground truth)")
    p.add_argument("--out", help="results JSON (default: RUN/results.json)")
    p.add_argument("--keep-samples", type=int, default=256, metavar="N",
                   help="videos whose best, worst and random samples are saved "
                        "beside the JSON (RESULTS_samples.npz): the first N "
                        "(default 256; -1: all, about 0.8 MB per Moving MNIST "
                        "video; FVD keeps all). The scores cover every video")
    p.add_argument("--release-memory", action="store_true",
                   help="hand the C heap's free pages back to the system after each "
                        "batch (glibc): keeps memory flat on long evaluations (all "
                        "5,000 Moving MNIST videos); see "
                        "benchmarks/bench_eval_memory.py")
    p.set_defaults(func=_run)
