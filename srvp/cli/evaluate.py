"""``python -m srvp evaluate``: the paper's protocol on a run or official folder."""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Optional, Tuple

import torch

from ..config import MAX_SEED, check_euler_steps
from ..fileio import DiskFullError, atomic_write_text, full_disk_cause
from ..precision import AMP_CHOICES
from .common import DISK_FULL, DONE, NON_FINITE, USAGE, resource_error

_PROBE_BYTES = 1 << 16  # the write probe: 64 KiB, written and synced

_EPILOG = """examples:
  python -m srvp evaluate runs/cpu --data-dir MNIST_DIR --n-videos 1000
  python -m srvp data official-weights --dataset smmnist --out official/smmnist
  python -m srvp evaluate official/smmnist --lpips-weights alexnet-owt-7be5be79.pth

--data-dir, Moving MNIST: a folder with the test-set .npz (from `python -m srvp
data mmnist-testset`) or the MNIST test IDX files, from which the official test
set is rebuilt in memory; default: $SRVP_MNIST_DIR. Required for the others:
KTH, the folder holding svg_test_set_40.npz (`python -m srvp data kth-testset`);
Human3.6M, the folder holding test_set_53_8 (`human-testset`); BAIR, the folder
holding processed/test (`bair-convert`). The data is read before LPIPS is
loaded; every option is checked, every file loaded (the model, whose weights
must be finite, LPIPS and I3D weights) and --out tried (a small write) before
the evaluation starts: a bad value stops with exit status 2 and writes nothing.
If the results cannot be written at the end (a full disk), they go next to the
run, else into the temporary folder, and the error line says where.

exit codes: 0 done; 2 a wrong option or file (nothing written), or too little
memory; 3 the model's scores are NaN (written as null, listed under
"non_finite" in the JSON; an infinite PSNR, a frame equal to the truth, is
written as null too, and is no error); 4 the results could not be written
where asked (a full disk: they are elsewhere, named); any other error shows
its traceback (a bug: please report it).

LPIPS needs torchvision's AlexNet weights (alexnet-owt-7be5be79.pth): pass
--lpips-weights, put the file under $TORCH_HOME/hub/checkpoints, or use
--lpips-download where the internet is reachable; --no-lpips skips it."""


def release_free_memory() -> bool:
    """Give the free pages of the C heap back to the system (glibc's
    ``malloc_trim(0)``); False where there is no such call (macOS, Windows,
    musl), where nothing happens.

    Why: glibc serves large blocks with ``mmap`` and returns them when freed,
    but raises that threshold each time such a block is freed; after a few
    batches PyTorch's tensors of a few MB come from the heap, whose freed pages
    stay with the process, so a long evaluation keeps growing
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
    from ..evaluate import evaluate, format_table

    try:  # every check before the evaluation: a bad value writes nothing
        out, model, cfg, device, protocol, batches, lpips_model, i3d = _prepare(args)
    except (FileNotFoundError, ValueError, ImportError) as err:
        from .data import mnist_hint

        print(f"error: {err}{mnist_hint(err)}", file=sys.stderr)
        return USAGE
    except Exception as err:
        return _resource_failure(err, "lower --batch-size")
    keep = None if args.i3d_weights or args.keep_samples < 0 else args.keep_samples
    which = "whole test set" if args.n_videos is None else "the first ones"
    print(f"scoring {len(batches.videos):,d} test videos ({which}), best of "
          f"{protocol.n_samples}, {protocol.nt_cond} + {protocol.nt_pred} frames, on "
          f"{device}\n(the bar shows the time left; --n-videos N scores fewer)",
          flush=True)
    try:
        res = evaluate(model, batches, protocol, lpips_model=lpips_model,
                       keep_samples=keep, after_batch=release_free_memory
                       if args.release_memory else None)
        if i3d is not None:
            from ..evaluate import add_fvd

            add_fvd(res, i3d)
    except Exception as err:
        return _resource_failure(err, "lower --batch-size, or --keep-samples")
    res.model = {"folder": str(args.run), "checkpoint": args.checkpoint,
                 "dataset": cfg.dataset}
    print(f"{res.metrics['psnr']['n']} test videos, {protocol.nt_cond} conditioning "
          f"+ {protocol.nt_pred} predicted frames")
    print(format_table(res))
    try:
        written, failure = _save_somewhere(res, out, Path(args.run))
    except Exception as err:  # no place could take them: the table above stays
        return _resource_failure(err, "")
    status = DONE
    if failure is not None:
        print(f"error: could not write {out} ({failure}); the results are in "
              f"{written} instead", file=sys.stderr)
        status = DISK_FULL if full_disk_cause(failure) else USAGE
    else:
        print(f"wrote {out}")
    nan = res.nan_scores()
    if nan:
        print(f"error: the model's {', '.join(n.upper() for n in nan)} scores are "
              f"not numbers (NaN): its predictions held NaN values (written as null "
              f"in {written}, listed under non_finite)", file=sys.stderr)
        status = status or NON_FINITE
    return status


def _prepare(args: argparse.Namespace):
    """Check every option and load every file, before the first video: returns
    (out, model, cfg, device, protocol, batches, LPIPS model, I3D model)."""
    from ..devices import device_for, resolve_amp
    from ..evaluate import Protocol
    from ..run_folder import RESULTS, load_official

    if args.out is not None and not args.out.strip():
        raise ValueError("--out '': an empty path; name the results file")
    out = Path(args.out) if args.out else Path(args.run) / RESULTS
    _check_args(args)
    amp, chosen = resolve_amp(args.device, args.amp)
    if chosen:
        print(chosen, file=sys.stderr)
    device = device_for(args.device, amp)
    _check_writable(out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} already holds an evaluation: pass --overwrite to "
                         "replace it, or --out to write another file")
    model, cfg = load_official(args.run, checkpoint=args.checkpoint)
    _check_finite_weights(model, Path(args.run) / args.checkpoint)
    nt_cond = cfg.nt_cond if args.nt_cond is None else args.nt_cond
    nt_gen = cfg.nt_gen if args.nt_gen is None else args.nt_gen
    if nt_cond >= nt_gen:
        raise ValueError(f"--nt-cond {nt_cond} leaves nothing to predict: it "
                         f"must be less than --nt-gen ({nt_gen}"
                         f"{'' if args.nt_gen else ', from config.json'})")
    protocol = Protocol(
        nt_cond, nt_gen - nt_cond,
        cfg.n_samples if args.n_samples is None else args.n_samples,
        n_euler_steps=args.n_euler_steps, seed=args.seed, amp=amp)
    batches = _test_batches(cfg, args, nt_gen)  # the data before LPIPS
    lpips_model = None if args.no_lpips else _lpips(args)
    i3d = _i3d(args.i3d_weights, device) if args.i3d_weights else None
    model.to(device)
    if lpips_model is not None:
        lpips_model.to(device)
    return out, model, cfg, device, protocol, batches, lpips_model, i3d


def _resource_failure(err: Exception, hint: str) -> int:
    """A full disk or too little memory as one line and its exit code; any
    other error is raised again (a bug)."""
    found = resource_error(err, hint)
    if found is None:
        raise err
    print(f"error: {found[1]}", file=sys.stderr)
    return found[0]


def _check_finite_weights(model, path: Path) -> None:
    bad = [k for k, v in model.state_dict().items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(f"{path} holds non-finite weights (NaN or infinite) in "
                         f"{', '.join(bad[:3])}{more}: its predictions would be "
                         "NaN; evaluate another checkpoint")


def _i3d(weights: str, device):
    """The I3D network of FVD, loaded strictly now: a file that is no I3D (an
    empty file, another network, a pickle) is one line before any video."""
    from ..metrics.i3d import load_i3d

    try:
        return load_i3d(weights, device=device)
    except Exception as err:  # several types: unpickling, keys, sizes
        if resource_error(err) is not None:
            raise
        first = " ".join(str(err).split())[:120]
        why = f"{type(err).__name__}: {first}" if first else type(err).__name__
        raise ValueError(f"--i3d-weights {weights}: not the I3D weights of FVD "
                         f"(i3d_pretrained_400.pt) ({why})") from None


def _save_somewhere(res, out: Path, run: Path) -> Tuple[Path, Optional[Exception]]:
    """Write the results at ``out``; if that fails (a full disk), next to the
    run, then in the temporary folder, with the samples, else without them.
    Returns where they went, and the failure at ``out`` (None: none). The
    results are never thrown away: only if every place fails, it raises."""
    from ..run_folder import save_results

    try:
        save_results(res, out)
        return out, None
    except OSError as err:
        failure = err
    except Exception as err:  # torch / numpy wrap the OSError
        if full_disk_cause(err) is None:
            raise
        failure = err
    name = f"{out.stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    for folder in dict.fromkeys((run.resolve(), Path(tempfile.gettempdir()))):
        for write in (save_results, _save_report):
            try:
                write(res, folder / name)
                return folder / name, failure
            except Exception as err:
                if not isinstance(err, OSError) and full_disk_cause(err) is None:
                    raise
    raise failure


def _save_report(res, path: Path) -> None:
    """The JSON report alone (no samples), for when space is short."""
    report = {**res.report(), "samples": "not saved: the disk was full"}
    atomic_write_text(path, json.dumps(report, indent=1, allow_nan=False) + "\n")


def _check_args(args: argparse.Namespace) -> None:
    """Option values that no data can make right: raise ``ValueError``."""
    for option in ("n_samples", "n_videos", "nt_cond", "nt_gen", "batch_size"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ValueError(f"--{option.replace('_', '-')} {value}: must be at "
                             "least 1")
    if args.lpips_weights and not args.no_lpips and \
            not Path(args.lpips_weights).is_file():
        raise ValueError(f"--lpips-weights {args.lpips_weights}: no such file")
    if args.i3d_weights and not Path(args.i3d_weights).is_file():
        raise ValueError(f"--i3d-weights {args.i3d_weights}: no such file (FVD needs "
                         "i3d_pretrained_400.pt; leave the option out to skip FVD)")
    if not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"--seed {args.seed}: the test seed must be from 0 to "
                         f"{MAX_SEED} (2**63 - 1)")
    if args.n_euler_steps is not None:
        check_euler_steps(args.n_euler_steps)
    if args.keep_samples < -1:
        raise ValueError(f"--keep-samples {args.keep_samples}: give N >= 0, or -1 "
                         "for all videos")


def _check_writable(out: Path) -> None:
    """Fail now, not after the evaluation, if ``out`` cannot be written: a
    temporary file is made and removed in its folder (or the nearest existing
    parent, where the folder is still to be created)."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name, e.g. "
                         f"{out / 'results.json'}")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:  # a probe of a few blocks: a full disk fails here, not at the end
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * _PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        if full_disk_cause(err) is not None:
            raise DiskFullError(err.errno, f"{err.strerror} in {folder}, where "
                                f"{out} goes (a test write failed)") from None
        raise ValueError(f"cannot write {out}: no new file can be made in {folder} "
                         f"({err.strerror or err}); choose another file with "
                         "--out") from None


def _test_batches(cfg, args: argparse.Namespace, nt_gen: int):
    """The test videos; a dataset other than Moving MNIST needs --data-dir."""
    from ..data.registry import get, test_batches

    if args.data_dir is None and not get(cfg.dataset).reads_mnist:
        raise ValueError(f"dataset {cfg.dataset!r} needs --data-dir, the folder of "
                         "its test set (see `python -m srvp evaluate --help`)")
    batches = test_batches(cfg, args.data_dir, nt_gen, args.batch_size,
                           args.n_videos)
    if args.n_videos is not None and len(batches.videos) < args.n_videos:
        raise ValueError(f"--n-videos {args.n_videos}: the test set holds only "
                         f"{len(batches.videos)} videos")
    return batches


def _lpips(args: argparse.Namespace):
    """The LPIPS model; each way it can fail is one line saying how to go on."""
    from ..metrics.lpips import ALEXNET_FILE, ALEXNET_URL, load_lpips

    go_on = "pass --lpips-weights PATH, or --no-lpips to skip LPIPS"
    try:
        return load_lpips(args.lpips_weights, allow_download=args.lpips_download)
    except ImportError as err:
        raise ImportError(f"{err}; or pass --no-lpips") from None
    except Exception as err:  # a file that is no AlexNet fails in several ways
        first = " ".join(str(err).split()).split(". ")[0][:120]
        why = f"{type(err).__name__}: {first}" if first else type(err).__name__
        if args.lpips_weights:
            raise ValueError(f"--lpips-weights {args.lpips_weights}: not "
                             f"torchvision's AlexNet checkpoint ({why})") from None
        if isinstance(err, FileNotFoundError):
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            raise ValueError(f"LPIPS needs torchvision's AlexNet weights "
                             f"{ALEXNET_FILE} ({ALEXNET_URL}), not found in "
                             f"{cache}: {go_on}") from None
        if isinstance(err, OSError):  # --lpips-download, offline
            raise ValueError(f"could not download {ALEXNET_FILE} for LPIPS ({why}): "
                             f"{go_on}") from None
        raise


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="best-of-N PSNR / SSIM / LPIPS on the official test set",
        description="Evaluate a run folder (or an official experiment folder) with "
                    "the paper's protocol: N samples per test video, the best chosen "
                    "per video and metric, mean over videos with a 95% interval, "
                    "beside the blank and last-frame reference predictors.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="folder with config.json and model.pt")
    p.add_argument("--data-dir", metavar="DIR",
                   help="test data (see below); Moving MNIST default: "
                        "$SRVP_MNIST_DIR, other datasets: required")
    p.add_argument("--checkpoint", default="model.pt",
                   help="weights file in the folder (model.pt or model_best.pt)")
    p.add_argument("--n-samples", type=int, metavar="N", help="samples per video, "
                   ">= 1 (default: the preset's, 100; 1 for deterministic Moving "
                   "MNIST)")
    p.add_argument("--n-videos", type=int, metavar="N",
                   help="evaluate the first N test videos, 1 to the test set's size "
                        "(default: all)")
    p.add_argument("--nt-cond", type=int, metavar="N",
                   help="conditioning frames, fewer than --nt-gen (default: preset)")
    p.add_argument("--nt-gen", type=int, metavar="N",
                   help="conditioning + predicted frames (default: preset)")
    p.add_argument("--n-euler-steps", type=int, metavar="N",
                   help="Euler steps per frame of the prediction, N >= 1 (dt = "
                        "1/N; default: the training value); as in the official "
                        "test, the conditioning frames keep the training step")
    p.add_argument("--batch-size", type=int, default=16, metavar="N",
                   help="test videos per batch (default 16, as the official test). "
                        "It sets how the random draws fall on the videos, so another "
                        "batch size gives other samples and scores that differ "
                        "within their 95%% interval")
    p.add_argument("--seed", type=int, default=1, help="test seed (official: 1)")
    p.add_argument("--amp", default="off", choices=AMP_CHOICES,
                   help="precision of the predictions (scores are computed in "
                        "float32): off, float32 as in the paper (default); auto, "
                        "bf16 where the hardware computes it (else fp16 on a GPU, "
                        "off on a CPU), said when it starts; bf16, "
                        "faster where the hardware computes bfloat16, moving the "
                        "scores slightly (book ch. 5 and benchmarks/ measure it); "
                        "fp16 for GPUs without bfloat16 (refused on a CPU)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--lpips-weights", metavar="PATH",
                   help="path to alexnet-owt-7be5be79.pth")
    p.add_argument("--lpips-download", action="store_true",
                   help="let the lpips package download AlexNet (needs internet)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    p.add_argument("--i3d-weights", help="i3d_pretrained_400.pt: also compute FVD "
                   "(conditioning + one random sample against conditioning + "
                   "ground truth)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing results file (and its samples)")
    p.add_argument("--out", metavar="FILE", help="results JSON (default: "
                   "RUN/results.json); its folder must be writable")
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
