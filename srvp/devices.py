"""Where and how a command runs, shared by training and evaluation: the device
(``--device``), its precision (``--amp``), the layout of the convolutions
(``--memory-format``) and the processes that make the batches (``--workers``).

Every check raises a one-line ``ValueError`` naming the option and the fix.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from .precision import AMP_MODES, auto_amp, native_bf16

#: ``--memory-format`` values.
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def resolve_device(name: str) -> torch.device:
    """The device named by ``--device`` (auto: CUDA if present, else the CPU);
    ``ValueError`` naming the option for a bad name or an absent device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} (--device): expected auto, cpu, cuda or "
                         "cuda:N")
    if device.type == "cuda":
        _check_cuda(name, device)
    return device


def _check_cuda(name: str, device: torch.device) -> None:
    if not torch.cuda.is_available():
        why = ("this PyTorch is built without CUDA" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise ValueError(f"device={name!r} (--device): CUDA is not available "
                         f"({why}): use --device cpu")
    n = torch.cuda.device_count()
    if device.index is not None and device.index >= n:
        raise ValueError(f"device={name!r} (--device): there are only {n} CUDA "
                         f"devices (cuda:0 to cuda:{n - 1})")


def check_amp(amp: str, device: torch.device) -> None:
    """Raise ``ValueError`` for a precision the device should not run: an
    unknown mode, float16 on a CPU (slower than float32 there; bfloat16 is the
    CPU's mixed precision), or bfloat16 on a GPU that would emulate it."""
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r} (--amp): choose {', '.join(AMP_MODES)}")
    if amp == "fp16" and device.type == "cpu":
        raise ValueError("amp=fp16 (--amp): float16 is for GPUs, slower than "
                         "float32 on a CPU; use --amp bf16 or off on a CPU")
    if amp == "bf16" and device.type == "cuda" and not native_bf16(device):
        raise ValueError(f"amp=bf16 (--amp): {torch.cuda.get_device_name(device)} has "
                         "no native bfloat16 (it would be emulated, slower than "
                         "float32); use --amp fp16 there, or --amp off")


def resolve_amp(name: str, amp: str) -> Tuple[str, Optional[str]]:
    """The precision that ``--amp`` names on the device ``--device`` names:
    ``amp`` itself, or for ``auto`` the choice of :func:`srvp.precision.auto_amp`
    and a line saying it (None otherwise)."""
    if amp != "auto":
        return amp, None
    mode, why = auto_amp(resolve_device(name))
    return mode, f"--amp auto: {mode} ({why})"


def device_for(name: str, amp: str) -> torch.device:
    """The device named by ``--device``, checked for the precision ``--amp``:
    the one rule that training and evaluation apply."""
    device = resolve_device(name)
    check_amp(amp, device)
    return device


def resolve_memory_format(name: str, device: torch.device,
                          amp: str = "off") -> torch.memory_format:
    """The layout of the model's 4-D weights (hence of the convolutions'
    activations). ``auto`` is channels-last on the CPU and on GPUs with mixed
    precision, and the official contiguous layout for float32 on GPUs
    (``benchmarks/bench_train.py --memory-format`` compares them). Both layouts
    give the same results up to float32 rounding."""
    if name not in MEMORY_FORMATS:
        raise ValueError(f"memory_format={name!r} (--memory-format): expected one "
                         f"of {', '.join(MEMORY_FORMATS)}")
    if name == "auto":
        fast = device.type == "cpu" or amp in ("bf16", "fp16")
        name = "channels_last" if fast else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def resolve_workers(workers: Optional[int], device: torch.device, world: int) -> int:
    """DataLoader processes that make the batches: ``workers`` if given, else
    none on the CPU (its cores run the model) and, on a GPU, up to 4 per
    process, leaving one core each to drive its GPU (``benchmarks/results/``
    holds the timings). The batches are the same either way."""
    if workers is not None:
        return workers
    if device.type == "cpu":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(0, min(4, cores // max(1, world) - 1))
