"""The training objective: the negative ELBO as the official code optimises it
(book ch. 3 and 4).

loss = [ sum_t NLL(x_t | x_hat_t)                (every frame, every pixel)
         + beta_y KL(q(y_1) || N(0, I))
         + beta_z sum_t KL(q(z_t) || p(z_t | y_t-1))
         + l2_res sum_s || dt f(y_s, z) ||_2 ]   (every Euler sub-step)
       / batch size
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .config import Config
from .model import Output, normal_scale


class Loss(NamedTuple):
    """Loss terms, each summed over its dimensions and divided by the batch size.

    ``loss`` is the weighted total that is back-propagated; the other fields are
    the unweighted terms, for logging.
    """

    loss: torch.Tensor
    nll: torch.Tensor
    kl_y: torch.Tensor
    kl_z: torch.Tensor
    l2_res: torch.Tensor


def gaussian_nll(x_hat: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    """-log N(x; x_hat, scale^2), element-wise (exact, constants included).

    The operations run in the order of ``torch.distributions.Normal.log_prob``,
    which the official loss calls, so that values and gradients match it to the
    bit for every ``obs_scale`` (the scale is a tensor of ``x_hat``'s type there).
    """
    scale = torch.as_tensor(scale, dtype=x_hat.dtype, device=x_hat.device)
    log_density = (-((x - x_hat) ** 2) / (2 * scale**2) - scale.log()
                   - math.log(math.sqrt(2 * math.pi)))
    return -log_density


def kl_normal(q_params: torch.Tensor, p_params: torch.Tensor) -> torch.Tensor:
    """KL(N_q || N_p) element-wise, for parameters ``[loc, raw_scale]`` (..., 2n)."""
    q_loc, q_raw = q_params.chunk(2, -1)
    p_loc, p_raw = p_params.chunk(2, -1)
    q_scale, p_scale = normal_scale(q_raw), normal_scale(p_raw)
    var_ratio = (q_scale / p_scale) ** 2
    mahalanobis = ((q_loc - p_loc) / p_scale) ** 2
    return 0.5 * (var_ratio + mahalanobis - 1 - var_ratio.log())


def kl_standard_normal(q_params: torch.Tensor) -> torch.Tensor:
    """KL(N_q || N(0, I)) element-wise, for parameters ``[loc, raw_scale]``."""
    loc, raw = q_params.chunk(2, -1)
    var = normal_scale(raw) ** 2
    return 0.5 * (var + loc**2 - 1 - var.log())


def elbo_loss(out: Output, x: torch.Tensor, cfg: Config) -> Loss:
    """The official training loss for a batch ``x`` (T, B, C, H, W).

    ``out`` comes from ``model(x)`` with integer-time frames only. Terms are
    computed in float32 even under autocast.
    """
    if out.x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(out.x_hat.shape)} and x {tuple(x.shape)} "
                         "differ: call the model without intermediate frames")
    if out.q_z_params is None or len(out.q_z_params) != len(out.p_z_params):
        raise ValueError("every transition needs a posterior z: run the model on "
                         "observed frames only")
    bsz = x.shape[1]
    nll = gaussian_nll(out.x_hat.float(), x.float(), cfg.obs_scale).sum()
    kl_y = kl_standard_normal(out.q_y1_params.float()).sum()
    kl_z = kl_normal(out.q_z_params.float(), out.p_z_params.float()).sum()
    l2 = out.res.float().norm(p=2, dim=-1).sum()  # un-squared, dt included
    total = nll + cfg.beta_y * kl_y + cfg.beta_z * kl_z + cfg.l2_res * l2
    return Loss(total / bsz, nll / bsz, kl_y / bsz, kl_z / bsz, l2 / bsz)
