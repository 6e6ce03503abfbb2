"""``python -m srvp evaluate``: the paper's protocol on a run or official folder."""
from __future__ import annotations

import argparse
import sys
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


class TestBatches:
    """Test videos held as stored (uint8), served as float batches (T, B, ...).

    Converting one batch at a time keeps a 5,000-video evaluation from holding
    every video in float32 (2 GB for Moving MNIST) on top of its samples.
    """

    def __init__(self, videos, batch_size: int):
        self.videos, self.batch_size = videos, batch_size

    def __len__(self) -> int:
        return -(-len(self.videos) // self.batch_size)

    def __iter__(self):
        from .data.mmnist import collate_fn

        for i in range(0, len(self.videos), self.batch_size):
            yield collate_fn(self.videos[i:i + self.batch_size])


def test_batches(cfg, data_dir, nt: int, batch_size: int, n_videos=None) -> TestBatches:
    """The official test videos of ``cfg.dataset``, as float batches (T, B, ...)."""
    from .data.testset import MovingMNISTTestSet, build_test_set, official_filename

    if cfg.dataset in ("kth", "human", "bair"):
        ds = video_test_set(cfg, data_dir, nt)
        videos = [ds[i] for i in range(len(ds) if n_videos is None
                                        else min(n_videos, len(ds)))]
    elif cfg.dataset not in ("smmnist", "mmnist"):
        raise NotImplementedError(f"dataset {cfg.dataset!r}: no test set reader")
    else:
        data_dir = Path(data_dir)
        if (data_dir / official_filename(cfg.deterministic)).exists() or \
                data_dir.suffix == ".npz":
            ds = MovingMNISTTestSet(data_dir, cfg.deterministic, seq_len=nt)
            videos = [ds[i] for i in range(len(ds) if n_videos is None else n_videos)]
        else:
            from .data.mnist import load_mnist

            images, labels = load_mnist(data_dir, split="test")
            seqs = build_test_set(images, labels, deterministic=cfg.deterministic,
                                  num_videos=n_videos, progress=False)["sequences"]
            videos = [torch.from_numpy(seqs[:nt, i]).unsqueeze(1)
                      for i in range(seqs.shape[1])]
    return TestBatches(videos, batch_size)


def video_test_set(cfg, data_dir, nt: int):
    """The KTH, Human3.6M or BAIR test set in ``data_dir``, serving ``nt`` frames.

    KTH: ``svg_test_set_40.npz`` (or that file's path); Human3.6M: the folder of
    test clips (or the data folder holding ``test_set_53_8``), subsampled by
    ``cfg.subsampling``; BAIR: the data folder holding ``processed/test``.
    """
    from .data import bair, human, kth

    if cfg.dataset == "kth":
        return kth.KTHTestSet(data_dir, seq_len=nt)
    if cfg.dataset == "human":
        return human.HumanTestSet(data_dir, seq_len=nt, subsampling=cfg.subsampling)
    return bair.BairTestSet(data_dir, seq_len=nt)


def _run(args: argparse.Namespace) -> int:
    from .checkpoint import load_official
    from .evaluate import evaluate, format_table, save_results

    try:
        model, cfg = load_official(args.run, checkpoint=args.checkpoint)
        lpips_model = None
        if not args.no_lpips:
            from .metrics.lpips import load_lpips

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
    nt_cond = args.nt_cond or cfg.nt_cond
    nt_pred = (args.nt_gen or cfg.nt_gen) - nt_cond
    n_samples = args.n_samples or cfg.n_samples
    dt = None if args.n_euler_steps is None else 1 / args.n_euler_steps
    try:
        batches = test_batches(cfg, args.data_dir, nt_cond + nt_pred,
                               args.batch_size, args.n_videos)
    except (FileNotFoundError, ValueError, NotImplementedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    keep = None if args.i3d_weights or args.keep_samples < 0 else args.keep_samples
    res = evaluate(model, batches, nt_cond, nt_pred, n_samples, dt=dt,
                   lpips_model=lpips_model, seed=args.seed, device=device,
                   keep_samples=keep)
    if args.i3d_weights:
        from .evaluate import add_fvd
        from .metrics.i3d import load_i3d

        add_fvd(res, load_i3d(args.i3d_weights, device=device))
    res["model"] = {"folder": str(args.run), "checkpoint": args.checkpoint,
                    "dataset": cfg.dataset}
    out = Path(args.out) if args.out else Path(args.run) / "results.json"
    save_results(res, out)
    n = res["metrics"]["psnr"]["n"]
    print(f"{n} test videos, {nt_cond} conditioning + {nt_pred} predicted frames")
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
                   help="Euler steps per frame at test time (dt = 1/N; default: "
                        "the training value)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="test videos per batch (does not change the scores)")
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
    p.set_defaults(func=_run)
