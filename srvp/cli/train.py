"""``python -m srvp train``: the command line of :mod:`srvp.train`."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from typing import Dict, List, Tuple

from ..config import OFFICIAL_NAMES, PRESETS, Config, SVGSettings, preset
from ..devices import MEMORY_FORMATS
from ..precision import AMP_CHOICES
from .common import BUG, DISK_FULL, NON_FINITE, USAGE, resource_error

_EPILOG = """examples:
  python -m srvp train --preset cpu --amp auto --data-dir MNIST_DIR --out runs/cpu
  python -m srvp train --preset smmnist --data-dir MNIST_DIR --out runs/sm --amp bf16
  python -m srvp train --preset kth ... --nproc 4   (one process per GPU)
  python -m srvp train --preset cpu --amp auto --data-dir MNIST_DIR --out runs/cpu \\
      --resume

A run can be stopped at any time (Ctrl-C, SIGTERM, even kill -9 or a full
disk): --resume continues it from its last checkpoint and ends with the same
weights as an uninterrupted run (on CPU). A run stopped before its first
checkpoint has nothing to lose: --resume starts it from step 0, and a new run
in its folder replaces it; a folder holding a checkpoint or weights is never
overwritten. One trainer at a time writes a folder (run.lock holds its pid).
With --nproc N (or under torchrun), every process stops at the same step and
rank 0 alone writes the checkpoint and prints the closing line.

--resume refuses another config, --seed or --amp than the run's, except what
--allow-change names; the run's config is the one its checkpoint holds, and a
config.json edited since is refused. A damaged checkpoint or log.jsonl is
reported (exit code 2), never repaired by dropping records. After a divergence
(exit code 3; nothing non-finite is ever saved), for instance:
  python -m srvp train ... --resume --set lr=1e-4 --allow-change lr
continues with a lower learning rate and records the change (step, old, new)
in run.json's history.

Nothing is written before the data gave its first batch and the first step
ran; every value (--set, options) is checked first, NaN and infinities too,
with one line naming it and its allowed range. --out '' is refused.

exit codes: 0 finished; 1 stopped early (--resume continues); 2 wrong option,
run folder (nothing written) or too little memory (lower batch_size, seq_len or
val_batch_size); 3 diverged; 4 a write failed (a full disk: no space, or the
quota reached; permissions; the previous files are intact, --resume continues);
5 unexpected error, a bug (--debug shows its traceback)."""


def parse_overrides(items: List[str]) -> Dict[str, object]:
    """``["ny=10", "skipco=true"]`` -> typed values for :meth:`Config.replace`."""
    types = {f.name: str(f.type)
             for f in (*dataclasses.fields(Config), *dataclasses.fields(SVGSettings))
             if f.name != "svg"}
    out: Dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = OFFICIAL_NAMES.get(key, key)  # e.g. n_iter_test -> val_batches
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key not in types:
            raise ValueError(f"--set {key}: unknown config field; known fields: "
                             f"{', '.join(sorted(types))}")
        out[key] = _cast(key, raw, types[key])
    return out


def _cast(key: str, raw: str, kind: str):
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        return {"int": int, "float": float, "str": str}[kind](raw)
    except ValueError:
        raise ValueError(f"--set {key}={raw}: expected a value of type "
                         f"{kind}") from None


def _run(args: argparse.Namespace) -> int:
    from ..train import Options, Trainer

    if args.nproc < 1:
        print(f"error: --nproc {args.nproc}: must be at least 1 (processes)",
              file=sys.stderr)
        return USAGE
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # the launcher
        from .launch import launch

        return launch(args.nproc, args.argv)
    rank = int(os.environ.get("RANK", "0"))
    started = False
    try:
        cfg = preset(args.preset, **parse_overrides(args.set))
        opts = Options(device=args.device, amp=args.amp, compile=args.compile,
                       memory_format=args.memory_format, seed=args.seed,
                       workers=args.workers,
                       log_interval=args.log_interval, ckpt_interval=args.ckpt_interval,
                       max_steps=args.max_steps, time_limit=args.time_limit)
        trainer = Trainer(cfg, args.out, args.data_dir, opts, resume=args.resume,
                          allow_changes=args.allow_change,
                          run_info={"argv": sys.argv, "preset": args.preset,
                                    "overrides": args.set})
        started = True
        code = trainer.fit()
    except KeyboardInterrupt:
        if args.debug:
            raise
        if rank == 0:
            print("error: interrupted; the last checkpoint written is kept: "
                  "continue with --resume", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        status, message = _classify(err, started)
        if status == USAGE:
            from .data import mnist_hint

            message += mnist_hint(err)  # names --data-dir where MNIST is missing
            if rank > 0:  # every process checks the same: rank 0 says it
                return status
        print(f"error: {f'rank {rank}: ' if rank else ''}{message}", file=sys.stderr)
        return status
    if rank > 0:  # rank 0 validates, writes and says how it ended
        return code
    state = "finished" if code == 0 else "stopped (resume with --resume)"
    best = (f"best validation PSNR {trainer.best_psnr:.2f} dB"
            if math.isfinite(trainer.best_psnr) else "no validation yet")
    print(f"{state} at step {trainer.step:,}/{cfg.n_iter:,}; {best}; "
          f"run folder {args.out}")
    return code


def _classify(err: Exception, started: bool) -> Tuple[int, str]:
    """The exit code and message of an error (the table in ``--help``)."""
    from ..run_checks import RunFolderError
    from ..train import TrainingDiverged

    if isinstance(err, TrainingDiverged):
        return NON_FINITE, str(err)
    found = resource_error(err, _MEMORY_HINT)
    if found is not None:
        return found
    if isinstance(err, RunFolderError) or (not started and isinstance(
            err, (ValueError, TypeError, NotImplementedError, FileNotFoundError))):
        return USAGE, str(err)
    if isinstance(err, OSError):
        return DISK_FULL, str(err)
    return BUG, (f"unexpected {type(err).__name__}: {err} (a bug: rerun with "
                 "--debug for its traceback and report it)")


_MEMORY_HINT = ("lower batch_size, seq_len, val_batch_size or val_batches (--set "
                "KEY=N) or the layer sizes; a checkpoint already written is kept")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train SRVP or the SVG-LP baseline (CPU, one GPU, or many "
                      "with torchrun)",
        description="Train SRVP (or SVG-LP: the svg presets) with the official\n"
                    "recipe: Adam (lr 3e-4), constant learning rate then linear decay\n"
                    "to zero, validation by best-of-N PSNR every val_interval steps\n"
                    "and at the last step.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, choices=sorted(PRESETS),
                   help="hyperparameters of the paper (smmnist, mmnist, kth, human, "
                        "bair) or the small cpu / smoke models")
    p.add_argument("--data-dir", help="dataset folder (Moving MNIST: the MNIST IDX "
                                      "files; default: $SRVP_MNIST_DIR)")
    p.add_argument("--out", required=True,
                   help="run folder (created; see below for an existing one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set batch_size=32 "
                        "(repeatable; see `python -m srvp presets NAME`)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--allow-change", action="append", default=[], metavar="FIELD",
                   choices=["lr", "amp"],
                   help="with --resume: let the run continue with another lr (--set "
                        "lr=...) or --amp, recorded in run.json (repeatable)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--amp", default="off", choices=AMP_CHOICES,
                   help="mixed precision through torch.amp. auto picks bf16 where "
                        "the hardware computes bfloat16, fp16 on older GPUs, else "
                        "off, and says which (run.json records it). bf16 is faster "
                        "where the hardware computes bfloat16 (CPUs with bfloat16 "
                        "instructions, GPUs from Ampere on; benchmarks/ measures "
                        "it); convolutions and products then round to bfloat16, so "
                        "the numbers differ from float32 by more than rounding (the "
                        "book's model was trained so). fp16 adds a gradient scaler: "
                        "for GPUs without bfloat16 (T4, V100); refused on a CPU. "
                        "Default: off (float32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--memory-format", default="auto", choices=MEMORY_FORMATS,
                   help="layout of the convolutions: auto is channels_last on the "
                        "CPU and with --amp on GPUs (faster there; the same results "
                        "up to float32 rounding), else contiguous, the official "
                        "layout")
    p.add_argument("--seed", type=int, default=1, help="seed of data and noise")
    p.add_argument("--workers", type=int, default=None,
                   help="processes that make the batches beside the training "
                        "(default: 0 on the CPU, whose cores train; up to 4 per GPU, "
                        "one core left to drive it); the batches are the same")
    p.add_argument("--log-interval", type=int, default=10,
                   help="steps between log.jsonl records")
    p.add_argument("--ckpt-interval", type=int, default=100,
                   help="steps between resumable checkpoints")
    p.add_argument("--max-steps", type=int,
                   help="stop after this step (resumable), e.g. to train in slices")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop after this much training time (resumable)")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train with N processes on this machine, one per GPU (or "
                        "CPU processes sharing the cores), through PyTorch's "
                        "launcher as `torchrun --standalone --nproc_per_node N` "
                        "would; batch_size is split between them. Default: 1. For "
                        "several machines, use torchrun itself")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of any error (for bug reports)")
    p.set_defaults(func=_run)
