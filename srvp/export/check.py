"""How much compressed weights move the paper's score: best-of-n PSNR of the
PyTorch model and of an export, with the same noise (book ch. 5 and 6)."""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import torch

from ..metrics.pixel import psnr
from ..model import SRVP
from .sampler import Pieces, sample


def _best_psnr(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Best over samples (n, T, 1, C, H, W) of the mean PSNR over frames."""
    scores = torch.stack([psnr(p, truth).mean() for p in pred])
    return float(scores.max())


def psnr_gap(model: SRVP, folder, videos: torch.Tensor, n_samples: int = 100,
             n_euler_steps: int | None = None, seed: int = 1,
             log: Callable[[str], None] | None = None) -> Dict:
    """Best-of-``n_samples`` PSNR per video of ``model.predict`` and of the
    export in ``folder``, each video drawn with the same noise (seed
    ``seed + i`` for video i: torch's generator feeds both).

    ``videos`` (T, N, C, H, W) in [0, 1]: the first ``nt_cond`` frames
    condition, the next ``nt_pred`` are scored. Returns the means and their
    difference (export minus PyTorch), in dB; ``log`` gets a running line
    every 10 videos.
    """
    pieces = Pieces(folder, threads=torch.get_num_threads())
    nt_cond, nt_pred = pieces.manifest["nt_cond"], pieces.manifest["nt_pred"]
    noise = lambda shape: torch.randn(*shape).numpy()  # noqa: E731
    rows = []
    for i in range(videos.shape[1]):
        x_cond, truth = videos[:nt_cond, [i]], videos[nt_cond:nt_cond + nt_pred, [i]]
        torch.manual_seed(seed + i)
        ref = model.predict(x_cond, nt_pred, n_samples, n_euler_steps,
                            chunk_size=n_samples)
        torch.manual_seed(seed + i)
        out = sample(pieces, x_cond.numpy(), nt_pred, n_samples, noise, n_euler_steps)
        rows.append((_best_psnr(ref, truth), _best_psnr(torch.from_numpy(out), truth)))
        if log is not None and len(rows) % 10 == 0:
            gaps = np.diff(np.array(rows), axis=1)
            log(f"{len(rows)} videos: mean gap {gaps.mean():+.4f} dB")
    ref, exp = np.array(rows).T
    return {"n_videos": len(rows), "n_samples": n_samples, "seed": seed,
            "n_euler_steps": n_euler_steps or model.cfg.n_euler_steps,
            "psnr_pytorch": float(ref.mean()), "psnr_export": float(exp.mean()),
            "gap_db": float(exp.mean() - ref.mean()),
            "max_abs_gap_per_video_db": float(np.abs(exp - ref).max())}
