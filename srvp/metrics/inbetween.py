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

:func:`inbetween_scores` measures both departures. A model that fades a digit
out and in again between frames, or makes it jump at the frame time, scores
badly on the first or the second; a bounce or two digits crossing bend the
straight line, so the error is not zero even for true in-between frames.
"""
from __future__ import annotations

from typing import Dict

import torch


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
    pred : frames from ``predict(..., dt=1/k, intermediate=True)`` for one
        sample: (T k, B, C, H, W), the frame at ``t_cond + j/k`` at index
        ``j - 1``.
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
