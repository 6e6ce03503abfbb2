"""Training throughput of the real trainer: iterations per second per precision.

Runs :class:`srvp.train.Trainer` (data loading, forward, loss, backward, Adam,
gradient scaler: everything ``python -m srvp train`` runs, except validation and
periodic checkpoints) for ``--warmup + --steps`` steps of one preset, once per
``--amp`` mode (with ``torch.compile`` too with ``--compile``, or only compiled
with ``--compile yes``), and prints
it/s over the last ``--steps`` steps, with the peak GPU memory on CUDA.

Beside the pace, each row gives the model's work per step (GFLOP of one forward
and backward pass, counted by ``torch.utils.flop_counter`` on the meta device: the
matrix products and convolutions), the FLOP rate achieved, the model FLOPs
utilisation (MFU: that rate over the GPU's dense tensor-core peak for the
precision, see :data:`PEAK_TFLOPS`; float32 steps are held against the TF32 peak
because cuDNN runs float32 convolutions on TF32 tensor cores by default) and the
time the paper's 1.1 M steps would take at that pace.

The authors quote about 6 it/s for the ``smmnist`` preset (batch 128) on one
Titan V; the table repeats that figure beside ours.

Usage:
    python benchmarks/bench_train.py --data-dir MNIST_DIR                # smmnist
    python benchmarks/bench_train.py --data-dir MNIST_DIR --preset cpu --amp off bf16
    python benchmarks/bench_train.py --data-dir MNIST_DIR --device cuda --compile
    python benchmarks/bench_train.py --data-dir MNIST_DIR --preset cpu --set nf=16
    python benchmarks/bench_train.py --data-dir MNIST_DIR --batch 16 --threads 1 \
        --amp off --memory-format contiguous channels_last
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from srvp import preset
from srvp.bench import step_gflop
from srvp.cli.train import parse_overrides
from srvp.precision import AMP_MODES
from srvp.run_folder import read_log
from srvp.train import Options, Trainer

#: it/s the authors give for the smmnist preset on one Titan V GPU.
AUTHORS_IT_S = {"smmnist": 6.0}
#: Training steps of the paper's Moving MNIST models.
PAPER_STEPS = 1_100_000
#: Dense tensor-core peaks (TFLOP/s) from NVIDIA's datasheets, per GPU name (the
#: first pattern that the CUDA device name contains) and precision: "tf32" for
#: float32 steps, "half" for bf16 and fp16 autocast.
PEAK_TFLOPS = (("H200", {"tf32": 494.7, "half": 989.4}),
               ("H100 PCIe", {"tf32": 378.0, "half": 756.0}),
               ("H100", {"tf32": 494.7, "half": 989.4}),  # SXM
               ("A100", {"tf32": 156.0, "half": 312.0}))


def peak_tflops(device_name: str, amp: str) -> float | None:
    """The GPU's dense peak for the precision ``amp``, or None when unknown."""
    for pattern, peaks in PEAK_TFLOPS:
        if pattern in device_name:
            return peaks["tf32" if amp == "off" else "half"]
    return None


def throughput(name: str, data_dir, device: str, amp: str, compile_: bool,
               warmup: int, steps: int, batch: int | None, changes: dict,
               memory_format: str = "auto", workers=None):
    """(it/s over the last ``steps`` steps, peak CUDA memory in GiB or None,
    batch size, device). The log's times have 0.1 s resolution: time enough
    steps for that to be small."""
    overrides = {**changes, "val_interval": 10**9}  # no validation inside the timing
    if batch is not None:
        overrides["batch_size"] = batch
    cfg = preset(name, **overrides)
    if warmup + steps > cfg.n_iter:
        raise SystemExit(f"--warmup + --steps = {warmup + steps} is past the end of "
                         f"the {name} schedule ({cfg.n_iter} steps): time fewer steps")
    with tempfile.TemporaryDirectory() as out:
        opts = Options(device=device, amp=amp, compile=compile_, log_interval=1,
                       memory_format=memory_format, workers=workers,
                       ckpt_interval=10**9, max_steps=warmup + steps,
                       progress=False)
        trainer = Trainer(cfg, Path(out) / "run", data_dir, opts)
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        trainer.fit()
        times = {r["step"]: r["time"] for r in read_log(Path(out) / "run")["train"]}
        peak = (torch.cuda.max_memory_allocated(trainer.device) / 2**30
                if trainer.device.type == "cuda" else None)
    seconds = times[warmup + steps] - times[warmup]
    return steps / seconds, peak, cfg.batch_size, trainer.device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smmnist", help="preset to train (Moving MNIST)")
    p.add_argument("--data-dir", help="MNIST IDX files (default: $SRVP_MNIST_DIR)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--amp", nargs="+", default=None, choices=AMP_MODES,
                   help="precisions to time (default: off bf16 fp16 on CUDA, off "
                        "bf16 on CPU)")
    p.add_argument("--compile", nargs="?", const="both", default="no",
                   choices=["no", "yes", "both"],
                   help="torch.compile the model: no (default), yes (compiled only) "
                        "or both (each precision without and with it; what a bare "
                        "--compile means)")
    p.add_argument("--memory-format", nargs="+", default=["auto"],
                   choices=["auto", "channels_last", "contiguous"],
                   help="layouts to time (default: auto, the trainer's default)")
    p.add_argument("--workers", nargs="+", default=["auto"],
                   help="batch-making processes to time, numbers or auto (default: "
                        "auto, the trainer's default)")
    p.add_argument("--batch", type=int, help="batch size (default: the preset's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, as in 'srvp train' (repeatable), "
                        "e.g. --set nf=16")
    p.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    p.add_argument("--steps", type=int, default=100, help="timed steps")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = p.parse_args()
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be at least 1")
    try:
        changes = parse_overrides(args.set)
    except ValueError as err:
        p.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda") or (args.device == "auto"
                                              and torch.cuda.is_available())
    amps = args.amp or (["off", "bf16", "fp16"] if cuda else ["off", "bf16"])
    try:
        workers = [None if w == "auto" else int(w) for w in args.workers]
    except ValueError:
        p.error(f"--workers takes numbers or auto, not {' '.join(args.workers)}")
    compiles = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]

    print(f"torch {torch.__version__}; preset {args.preset}; {args.warmup} warm-up + "
          f"{args.steps} timed steps; {torch.get_num_threads()} CPU threads"
          + "".join(f"; {k}={v}" for k, v in changes.items()))
    gpu = torch.cuda.get_device_name() if cuda else ""
    if cuda:
        print(f"GPU: {gpu}")
    print(f"{'device':8s} {'amp':5s} {'compile':8s} {'format':14s} {'workers':>7s} "
          f"{'batch':>5s} "
          f"{'it/s':>8s} {'ms/step':>8s} {'peak GiB':>9s} {'GFLOP':>7s} "
          f"{'TFLOP/s':>8s} {'MFU':>6s} {'1.1M steps':>11s}")
    flops: dict[int, float] = {}
    for amp in amps:
        for compile_ in compiles:
            for layout in args.memory_format:
                for n_workers in workers:
                    it_s, peak, batch, device = throughput(
                        args.preset, args.data_dir, args.device, amp, compile_,
                        args.warmup, args.steps, args.batch, changes, layout,
                        n_workers)
                    mem = f"{peak:9.2f}" if peak is not None else f"{'-':>9s}"
                    label = "auto" if n_workers is None else str(n_workers)
                    if batch not in flops:
                        flops[batch] = step_gflop(preset(args.preset, **changes),
                                                  batch)
                    rate = flops[batch] * it_s / 1e3  # TFLOP/s
                    top = peak_tflops(gpu, amp) if device.type == "cuda" else None
                    mfu = f"{100 * rate / top:5.1f}%" if top else f"{'-':>6s}"
                    print(f"{device.type:8s} {amp:5s} {str(compile_):8s} {layout:14s} "
                          f"{label:>7s} {batch:5d} {it_s:8.2f} {1e3 / it_s:8.1f} "
                          f"{mem} {flops[batch]:7.1f} {rate:8.3f} {mfu} "
                          f"{PAPER_STEPS / it_s / 3600:9.1f} h", flush=True)
    if args.preset in AUTHORS_IT_S:
        print(f"authors, official code, one Titan V, batch 128: about "
              f"{AUTHORS_IT_S[args.preset]:.0f} it/s")


if __name__ == "__main__":
    main()
