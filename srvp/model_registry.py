"""Which model a config trains: SRVP or a baseline, and its loss.

``cfg.model`` names the model; :func:`build_model` builds it and
:func:`compute_loss` computes the loss of its training output, so the trainer,
checkpoints and evaluation need no model-specific code.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Tuple

import torch
from torch import nn

from .baselines.svg import SVG, svg_loss
from .config import Config
from .loss import elbo_loss
from .model import SRVP

#: model name -> (module class, loss of ``module(x)`` for the batch ``x``)
MODELS: Dict[str, Tuple[Callable[[Config], nn.Module], Callable]] = {
    "srvp": (SRVP, elbo_loss),
    "svg": (SVG, svg_loss),
}


def _entry(cfg: Config):
    name = cfg.model
    if name not in MODELS:
        raise ValueError(f"model={name!r}: choose one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(cfg: Config) -> nn.Module:
    """The untrained model that ``cfg.model`` names, built from ``cfg``."""
    return _entry(cfg)[0](cfg)


def compute_loss(out, x: torch.Tensor, cfg: Config) -> NamedTuple:
    """Training loss of ``out = model(x)`` for the batch ``x`` (T, B, C, H, W):
    a NamedTuple whose ``loss`` field is back-propagated, the others logged."""
    return _entry(cfg)[1](out, x, cfg)
