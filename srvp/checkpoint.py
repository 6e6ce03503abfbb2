"""Reading official experiment folders and writing checkpoints safely (book ch. 8).

An official experiment folder holds ``config.json`` (the training flags) and
``model.pt`` (a plain state dict), as released with the paper. Runs of this
package use the same layout, so :func:`load_official` reads both.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from .config import Config
from .fileio import atomic_file
from .models import build_model

PathLike = Union[str, os.PathLike]


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename.

    A crash or a kill during the write leaves any previous file intact.
    """
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def read_state_dict(path: PathLike,
                    map_location: Any = "cpu") -> Dict[str, torch.Tensor]:
    """Load a state dict as data only (``weights_only=True``: never runs code).

    Wrappers are unwrapped: a ``{"model": ...}`` or ``{"state_dict": ...}``
    checkpoint and the ``module.`` prefix of DistributedDataParallel.
    """
    try:
        sd = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except Exception as err:  # unpickling errors have several types
        raise ValueError(f"{path} is not a readable PyTorch state dict "
                         f"({type(err).__name__}: {err})") from err
    for key in ("model", "state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}, not a state dict")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_official(xp_dir: PathLike, checkpoint: str = "model.pt",
                  map_location: Any = "cpu") -> Tuple[torch.nn.Module, Config]:
    """Build the model of an experiment folder (an :class:`SRVP`, or the
    baseline its ``model`` field names) and load its weights.

    Parameters
    ----------
    xp_dir : folder with ``config.json`` and the checkpoint.
    checkpoint : file name of the weights (``model.pt`` or ``model_best.pt``).
    map_location : passed to ``torch.load``.

    Returns
    -------
    (model, cfg) with the model in evaluation mode. The state dict must match
    the architecture exactly (``strict=True``); a mismatch raises and names the
    offending keys.
    """
    xp_dir = Path(xp_dir)
    cfg_path = xp_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: an experiment folder holds "
                                "config.json and model.pt")
    with open(cfg_path) as f:
        cfg = Config.from_official(json.load(f))
    model = build_model(cfg)
    sd = read_state_dict(xp_dir / checkpoint, map_location)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{xp_dir / checkpoint} does not match its config.json "
                         f"(model={cfg.model}, {cfg.archi}, ny={cfg.ny}, "
                         f"nz={cfg.nz}, nc={cfg.nc}, skipco={cfg.skipco}): "
                         f"{err}") from err
    return model.eval(), cfg


def save_experiment(model: torch.nn.Module, xp_dir: PathLike,
                    checkpoint: str = "model.pt") -> None:
    """Write ``config.json`` and the weights in the official layout, atomically."""
    xp_dir = Path(xp_dir)
    xp_dir.mkdir(parents=True, exist_ok=True)
    model.cfg.save(xp_dir / "config.json")
    atomic_torch_save(model.state_dict(), xp_dir / checkpoint)
