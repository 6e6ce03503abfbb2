"""The pieces of a trained SRVP that a sampler needs, as small modules.

Each piece wraps building blocks of :class:`srvp.model.SRVP` in evaluation mode,
with tensors time first as in the model; :mod:`srvp.export.onnx` writes each
one as an ONNX file. The sampling loop itself (draws of z, Euler steps) stays
outside, in :func:`srvp.export.sampler.sample` and in the page's sampler.js.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from ..model import SRVP


class Encode(nn.Module):
    """Frames x (T, B, C, H, W) -> codes hx (T, B, nhx) and the skip features
    of the last frame (each (B, c, h, w)), as :meth:`SRVP.encode` in eval mode."""

    def __init__(self, model: SRVP):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        hx, skips = self.model.encode(x)
        return (hx, *(skips or []))


class Infer(nn.Module):
    """Codes hx (T_cond, B, nhx) -> ``q_y1`` (B, 2 ny), content ``w`` (B, nw) and
    ``q_z`` (T_cond - 1, B, 2 nz), the posterior of each observed transition
    (:meth:`SRVP.q_y1_params`, :meth:`SRVP.infer_w`, :meth:`SRVP.infer_z_states`
    then ``q_z``)."""

    def __init__(self, model: SRVP):
        super().__init__()
        self.model = model

    def forward(self, hx: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        m = self.model
        q_y1 = m.q_y1_params(hx[: m.nt_inf])
        q_z = m.q_z(m.infer_z_states(hx)[1:])  # q(z_t+1 | x_1:t+1), t < T_cond - 1
        return q_y1, m.infer_w(hx), q_z


class Prior(nn.Module):
    """State y (B, ny) -> parameters (B, 2 nz) of the prior p(z_t+1 | y_t)."""

    def __init__(self, model: SRVP):
        super().__init__()
        self.p_z = model.p_z

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.p_z(y)


class Dynamics(nn.Module):
    """(y_t (B, ny), z_t+1 (B, nz)) -> f(y_t, z_t+1) (B, ny), the network of the
    Euler step of :meth:`SRVP._residual_step`."""

    def __init__(self, model: SRVP):
        super().__init__()
        self.dynamics = model.dynamics

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([y, z], -1))


class Decode(nn.Module):
    """Content w (B, nw), states y (T, B, ny) and skips -> frames
    (T, B, C, H, W) in [0, 1], as :meth:`SRVP.decode` (unfused)."""

    def __init__(self, model: SRVP):
        super().__init__()
        self.model = model

    def forward(self, w: torch.Tensor, y: torch.Tensor, *skips) -> torch.Tensor:
        return self.model.decode(w, y, list(skips) if skips else None)


def pieces(model: SRVP) -> Dict[str, nn.Module]:
    """The five pieces of ``model`` by file name stem, in evaluation mode."""
    model = model.eval()
    return {"encode": Encode(model), "infer": Infer(model), "prior": Prior(model),
            "dynamics": Dynamics(model), "decode": Decode(model)}


def skip_names(model: SRVP) -> List[str]:
    """Names of the skip features passed from ``encode`` to ``decode``."""
    return [f"skip{i}" for i in range(4)] if model.skipco else []
