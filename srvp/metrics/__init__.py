"""Evaluation metrics of the SRVP protocol (book ch. 5).

Frame metrics take a prediction and a ground truth of shape
``(T, B, C, H, W)`` in [0, 1] and return one score per frame and video,
``(T, B)``:

- :func:`psnr` and :func:`ssim` (pure PyTorch);
- :func:`lpips_distance` with a model from :func:`load_lpips` (needs the
  ``lpips`` package and torchvision's AlexNet weights).

:func:`fvd` compares two sets of videos with an I3D network
(:func:`load_i3d`, weights from a file) and :func:`frechet_distance` works on
any features (NumPy only). LPIPS and I3D weights are
never downloaded unless asked for.
"""

from .fvd import frechet_distance, frechet_distance_from_stats, fvd, fvd_videos
from .i3d import InceptionI3d, load_i3d
from .lpips import load_lpips, lpips_distance
from .pixel import psnr, ssim

__all__ = [
    "InceptionI3d",
    "frechet_distance",
    "frechet_distance_from_stats",
    "fvd",
    "fvd_videos",
    "load_i3d",
    "load_lpips",
    "lpips_distance",
    "psnr",
    "ssim",
]
