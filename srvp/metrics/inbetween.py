"""Measures of the frames predicted between two frame times (book ch. 6).

With ``K`` Euler steps per frame, ``predict(..., intermediate=True)`` returns
``K - 1`` frames between two frame times, and no video holds a true frame there
to compare with. What can be checked is what the data promise: a Moving MNIST
digit keeps its shape and brightness and moves in a straight line between two
bounces. So a frame at time ``t + j/K`` should

- hold as much ink (the sum of its pixel values) as its two neighbours at the
  frame times ``t`` and ``t + 1``, in proportion (:func:`ink`);
- have its centre of mass on the segment between theirs, at the fraction
  ``j/K`` of the way (:func:`centroid`).

:func:`inbetween_scores` measures both departures; :func:`inbetween_eval` averages
them per test video over several samples of a model. A model that fades a digit
out and in again between frames, or makes it jump at the frame time, scores
badly on the first or the second; a bounce or two digits crossing bend the
straight line, so the error is not zero even for true in-between frames.
"""
from __future__ import annotations

from typing import Dict, Iterable

import numpy as np
import torch

from ..config import check_euler_steps


def ink(frames: torch.Tensor) -> torch.Tensor:
    """Sum of the pixel values of each frame: (..., C, H, W) -> (...)."""
    return frames.flatten(-3).sum(-1)


def centroid(frames: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre (row, column) in pixels: (..., C, H, W) ->
    (..., 2); the centre of the frame for a blank frame."""
    img = frames.sum(-3)  # (..., H, W), channels summed
    h, w = img.shape[-2:]
    rows = torch.arange(h, dtype=img.dtype, device=img.device)
    cols = torch.arange(w, dtype=img.dtype, device=img.device)
    mass = img.sum((-2, -1))
    safe = mass.clamp_min(1e-8)
    r = (img.sum(-1) * rows).sum(-1) / safe
    c = (img.sum(-2) * cols).sum(-1) / safe
    centre = torch.stack([r, c], -1)
    blank = (mass <= 1e-8)[..., None]
    return torch.where(blank, torch.tensor([(h - 1) / 2, (w - 1) / 2],
                                           dtype=img.dtype, device=img.device),
                       centre)


def inbetween_scores(x_last: torch.Tensor, pred: torch.Tensor,
                     k: int) -> Dict[str, torch.Tensor]:
    """Ink and motion of the in-between frames of a prediction.

    Parameters
    ----------
    x_last : the last conditioning frame (B, C, H, W), the frame before the
        first predicted one.
    pred : frames from ``predict(..., n_euler_steps=k, intermediate=True)``
        for one sample: (T k, B, C, H, W), the frame at ``t_cond + j/k`` at
        index ``j - 1``.
    k : sub-steps per frame interval (k >= 2).

    Returns
    -------
    dict of (T, k - 1, B) tensors, one value per in-between frame:
    ``ink_ratio``, its ink over the ink interpolated between its neighbours
    (1 is perfect), and ``centroid_error``, the distance in pixels from its
    centre of mass to the point interpolated between theirs (0 is perfect).
    """
    if k < 2:
        raise ValueError(f"k={k}: in-between frames need at least 2 sub-steps")
    if pred.shape[0] % k:
        raise ValueError(f"{pred.shape[0]} frames are not a multiple of k={k}")
    t = pred.shape[0] // k
    fine = pred.view(t, k, *pred.shape[1:])  # (T, k, B, C, H, W)
    ends = torch.cat([x_last[None], fine[:, -1]])  # frame times: (T + 1, B, ...)
    between = fine[:, :-1]  # (T, k - 1, B, C, H, W)
    frac = torch.arange(1, k, dtype=pred.dtype, device=pred.device) / k
    frac = frac.view(1, -1, 1)  # (1, k - 1, 1)
    ink_ends = ink(ends)  # (T + 1, B)
    ink_mid = (1 - frac) * ink_ends[:-1, None] + frac * ink_ends[1:, None]
    c_ends = centroid(ends)  # (T + 1, B, 2)
    c_mid = ((1 - frac[..., None]) * c_ends[:-1, None]
             + frac[..., None] * c_ends[1:, None])  # (T, k - 1, B, 2)
    return {"ink_ratio": ink(between) / ink_mid.clamp_min(1e-8),
            "centroid_error": (centroid(between) - c_mid).norm(dim=-1)}


def _summary(scores: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Per video: mean |ink ratio - 1| and mean centroid error, (B,) each."""
    return {"ink_error": (scores["ink_ratio"] - 1).abs().mean((0, 1)),
            "centroid_error": scores["centroid_error"].mean((0, 1))}


@torch.no_grad()
def inbetween_eval(model, batches: Iterable[torch.Tensor], nt_cond: int,
                   nt_pred: int, k: int, n_samples: int = 5,
                   seed: int = 1) -> Dict[str, np.ndarray]:
    """How well ``n_samples`` predictions per video with ``k`` Euler steps per
    frame (``n_euler_steps``, dt = 1/k) keep ink and straight motion between
    frame times, one value per video.

    For ``k >= 2``, the scores of :func:`inbetween_scores` over the ``k - 1``
    frames between two frame times, averaged over the frames and samples:
    ``ink_error`` (mean |ink ratio - 1|, 0 is perfect) and ``centroid_error``
    (pixels). For ``k = 1`` there is no frame between two frame times, and the
    same scores are taken one level up: the frame at ``t + 1`` between those
    at ``t`` and ``t + 2`` (``nt_pred`` must then be even). The same coarse
    scores of the true frames, ``truth_ink_error`` and
    ``truth_centroid_error``, come with every ``k``: how far real motion
    departs from a straight line over two frames.

    Returns
    -------
    dict of (N,) float64 arrays over the N videos of ``batches`` (each
    (T, B, C, H, W) in [0, 1], T >= nt_cond + nt_pred).
    """
    check_euler_steps(k)
    if nt_pred % 2:
        raise ValueError(f"nt_pred={nt_pred}: the two-frame scores need an even "
                         "number of predicted frames")
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    out: Dict[str, list] = {}
    for x in batches:
        x = x[: nt_cond + nt_pred].to(device)
        x_cond, truth = x[:nt_cond], x[nt_cond:]
        pred = model.predict(x_cond, nt_pred, n_samples, n_euler_steps=k,
                             intermediate=True)  # (S, T k, B, C, H, W)
        span = max(k, 2)  # k = 1: the odd frames between the even ones
        per_sample = [_summary(inbetween_scores(x_cond[-1], s, span))
                      for s in pred]
        scores = {n: torch.stack([p[n] for p in per_sample]).mean(0)
                  for n in per_sample[0]}
        scores.update({f"truth_{n}": v for n, v in
                       _summary(inbetween_scores(x_cond[-1], truth, 2)).items()})
        for name, value in scores.items():
            out.setdefault(name, []).append(value.double().cpu())
    return {n: torch.cat(v).numpy() for n, v in out.items()}
