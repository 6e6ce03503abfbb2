"""Mixed precision, shared by training and evaluation: the ``--amp`` modes, their
autocast context, and whether a CUDA device computes bfloat16 natively (the
checks of a mode against a device are in :mod:`srvp.devices`)."""
from __future__ import annotations

import contextlib
from typing import Tuple

import torch

#: ``--amp`` values: float32 (the paper's), bfloat16 or float16 autocast.
AMP_MODES = ("off", "bf16", "fp16")
#: What the command lines accept: the modes, or ``auto`` (see :func:`auto_amp`).
AMP_CHOICES = ("auto",) + AMP_MODES

#: CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic: Intel AMX,
#: AVX-512 BF16 (Intel Cooper Lake and later, AMD Zen 4 and later), Arm's BF16.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def autocast(amp: str, device: torch.device):
    """The context that runs the forward pass in the precision ``amp``."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def native_bf16(device: torch.device) -> bool:
    """Whether a CUDA device computes bfloat16 natively (Ampere, compute
    capability 8.0, and later; a T4 or V100 only emulates it)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch: no emulation flag
        return torch.cuda.get_device_capability(device)[0] >= 8


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> Tuple[str, ...]:
    """The flags of :data:`BF16_CPU_FLAGS` that this CPU shows (none where
    ``cpuinfo`` cannot be read, as on macOS or Windows)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            flags.update(value.split())
    return tuple(f for f in BF16_CPU_FLAGS if f in flags)


def auto_amp(device: torch.device) -> Tuple[str, str]:
    """``--amp auto``: the fastest precision that ``device`` computes natively,
    and why. bf16 on a CPU with bfloat16 instructions and on GPUs from Ampere
    on; fp16 (with a gradient scaler in training) on older GPUs; off (float32)
    on a CPU without them, where bfloat16 would be emulated and slower."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if native_bf16(device):
            return "bf16", f"{name} computes bfloat16 natively"
        return "fp16", f"{name} has no native bfloat16"
    flags = cpu_bf16_flags()
    if flags:
        return "bf16", f"this CPU computes bfloat16 natively ({', '.join(flags)})"
    return "off", ("this CPU has no bfloat16 instructions (no AMX or AVX-512 BF16): "
                   "float32, faster here")
