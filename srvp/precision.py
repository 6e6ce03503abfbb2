"""Mixed precision, shared by training and evaluation: the ``--amp`` modes, their
autocast context, and whether a CUDA device computes bfloat16 natively (the
checks of a mode against a device are in :mod:`srvp.devices`)."""
from __future__ import annotations

import contextlib

import torch

#: ``--amp`` values: float32 (the paper's), bfloat16 or float16 autocast.
AMP_MODES = ("off", "bf16", "fp16")


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

