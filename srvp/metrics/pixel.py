"""Pixel-level video metrics: PSNR and SSIM, computed frame by frame.

Both functions follow the evaluation protocol of the SRVP paper (book ch. 5):
each score is computed per frame and per channel on pixels in [0, 1], then
averaged over the channels. They return one value per frame and per video,
shape ``(T, B)``, so that the caller can average over the predicted frames and
keep the best of ``n`` samples for each video.

Relation to scikit-image
------------------------
:func:`ssim` uses the definition of Wang et al. (2004) with the constants of
the official SRVP code: an 11 x 11 Gaussian window with sigma 1.5 (normalised
to sum to 1), ``K1 = 0.01``, ``K2 = 0.03``, data range 1, population
(co)variances and a *valid* convolution (no padding), so a 64 x 64 frame gives
a 54 x 54 SSIM map whose mean is the score.

``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1.0)`` computes the same
number. scikit-image filters with ``truncate=3.5``, hence a window radius
``int(3.5 * 1.5 + 0.5) = 5`` (11 taps, the same normalised Gaussian), filters
with reflect padding, and then averages the SSIM map after cropping
``(11 - 1) // 2 = 5`` pixels from every border. The cropped region is exactly
the set of pixels whose window lies inside the image, i.e. our valid map:
``S_skimage[5:-5, 5:-5] == S_valid`` and the two means agree (to float
precision). With ``channel_axis`` scikit-image averages per-channel scores,
which is our channel average. ``tests/test_metrics.py`` checks the scores to
1e-5 on float32 frames and the maps to 1e-10 in float64.

The valid Gaussian filtering is computed as a product with banded matrices
(see :func:`_valid_blur`), which gives the same numbers as a grouped
``conv2d`` and is faster on CPU.
"""

import torch

__all__ = ["gaussian_window", "psnr", "ssim", "ssim_map"]


def _check_videos(x_hat, x):
    """Raise if the two videos do not share a ``(T, B, C, H, W)`` shape."""
    if x_hat.shape != x.shape:
        raise ValueError(f"shape mismatch: {tuple(x_hat.shape)} vs {tuple(x.shape)}")
    if x.dim() != 5:
        raise ValueError(f"expected (T, B, C, H, W) videos, got {tuple(x.shape)}")


def psnr(x_hat, x):
    """Peak signal-to-noise ratio per frame, averaged over channels.

    For each frame and channel, ``10 * log10(1 / MSE)`` with the MSE taken over
    the ``H x W`` pixels (peak value 1), then the mean over channels. This is a
    mean of per-frame PSNRs, not the PSNR of a pooled MSE. A frame identical to
    its target gives ``inf``, as in the official code. See book ch. 5.

    Parameters
    ----------
    x_hat : torch.Tensor
        Predicted video, shape ``(T, B, C, H, W)``, values in [0, 1].
    x : torch.Tensor
        Ground-truth video, same shape.

    Returns
    -------
    torch.Tensor
        PSNR in dB, shape ``(T, B)``.
    """
    _check_videos(x_hat, x)
    mse = (x_hat - x).pow(2).mean(dim=(3, 4))  # (T, B, C)
    return (10 * torch.log10(1 / mse)).mean(dim=2)  # (T, B)


def gaussian_window(size=11, sigma=1.5, dtype=torch.float32, device=None):
    """One-dimensional Gaussian window normalised to sum to one.

    The 2-D SSIM window is the outer product of this vector with itself, which
    equals the official normalised 2-D Gaussian ``exp(-(u^2 + v^2) / 2 sigma^2)``.

    Parameters
    ----------
    size : int
        Number of taps (odd).
    sigma : float
        Standard deviation in pixels.
    dtype : torch.dtype
        Output dtype.
    device : torch.device or str, optional
        Output device.

    Returns
    -------
    torch.Tensor
        Window, shape ``(size,)``.
    """
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def _band_matrix(n, window):
    """Matrix ``(n - S + 1, n)`` whose product with a signal is a valid filter.

    Row ``i`` holds the window at columns ``i .. i + S - 1``, so ``M @ v`` is
    the valid (unpadded) correlation of ``v`` with ``window``.
    """
    size = window.numel()
    rows = n - size + 1
    mat = window.new_zeros(rows, n)
    cols = torch.arange(rows, device=window.device)[:, None] + torch.arange(
        size, device=window.device
    )
    mat.scatter_(1, cols, window.expand(rows, size))
    return mat


def _valid_blur(stack, window):
    """Separable valid Gaussian filtering of the last two axes of ``stack``.

    A valid 2-D convolution with the separable window ``w w^T`` equals
    ``M_H @ X @ M_W^T`` with banded matrices :func:`_band_matrix`. On CPU this
    batched matrix product is faster than a grouped ``conv2d``
    (``benchmarks/bench_metrics.py``); ``tests/test_metrics.py`` checks it
    against the 11 x 11 ``conv2d`` form.

    Parameters
    ----------
    stack : torch.Tensor
        Images, shape ``(..., H, W)``.
    window : torch.Tensor
        One-dimensional window, shape ``(S,)``.

    Returns
    -------
    torch.Tensor
        Filtered images, shape ``(..., H - S + 1, W - S + 1)``.
    """
    h, w = stack.shape[-2:]
    return _band_matrix(h, window) @ stack @ _band_matrix(w, window).T


def ssim_map(a, b, window_size=11, sigma=1.5, k1=0.01, k2=0.03, data_range=1.0):
    """SSIM map of image pairs with a Gaussian window and valid convolution.

    Parameters
    ----------
    a, b : torch.Tensor
        Images, shape ``(N, H, W)``; ``N`` counts frames times channels.
    window_size : int
        Window size (11 in the paper).
    sigma : float
        Gaussian standard deviation (1.5 in the paper).
    k1, k2 : float
        Stabilising constants, ``C_i = (k_i * data_range) ** 2``.
    data_range : float
        Dynamic range of the pixels (1 for [0, 1] images).

    Returns
    -------
    torch.Tensor
        SSIM map, shape ``(N, H - window_size + 1, W - window_size + 1)``.
    """
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    window = gaussian_window(window_size, sigma, a.dtype, a.device)
    if min(a.shape[-2:]) < window_size:
        raise ValueError(f"frames smaller than the {window_size}-pixel SSIM window")
    stack = torch.stack([a, b, a * a, b * b, a * b], dim=1)  # (N, 5, H, W)
    mu_a, mu_b, e_aa, e_bb, e_ab = _valid_blur(stack, window).unbind(dim=1)
    var_a = e_aa - mu_a * mu_a  # population variances, as in Wang et al.
    var_b = e_bb - mu_b * mu_b
    cov_ab = e_ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return num / den


def ssim(x_hat, x, chunk_size=1024, **kwargs):
    """Structural similarity per frame, averaged over the map and the channels.

    Official protocol (book ch. 5): 11 x 11 Gaussian window, sigma 1.5,
    ``K1 = 0.01``, ``K2 = 0.03``, data range 1, valid convolution. Frames are
    processed ``chunk_size`` at a time to bound memory.

    Parameters
    ----------
    x_hat : torch.Tensor
        Predicted video, shape ``(T, B, C, H, W)``, values in [0, 1].
    x : torch.Tensor
        Ground-truth video, same shape.
    chunk_size : int
        Number of ``(t, b)`` frames processed at once.
    **kwargs
        Passed to :func:`ssim_map` (``window_size``, ``sigma``, ``k1``,
        ``k2``, ``data_range``).

    Returns
    -------
    torch.Tensor
        SSIM, shape ``(T, B)``.
    """
    _check_videos(x_hat, x)
    nt, bsz, nc, h, w = x.shape
    a = x_hat.reshape(nt * bsz * nc, h, w)
    b = x.reshape(nt * bsz * nc, h, w)
    step = max(1, chunk_size) * nc
    scores = [
        ssim_map(a[i : i + step], b[i : i + step], **kwargs).mean(dim=(1, 2))
        for i in range(0, a.shape[0], step)
    ]
    return torch.cat(scores).view(nt, bsz, nc).mean(dim=2)  # (T, B)
