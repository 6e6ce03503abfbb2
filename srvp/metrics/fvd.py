"""Fréchet Video Distance (Unterthiner et al., 2018) with the SRVP protocol.

FVD fits a Gaussian to the I3D embeddings of a set of real videos and of a
set of generated videos, and returns the squared Fréchet (2-Wasserstein) distance
between the two Gaussians (book ch. 5):

    FVD = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

Protocol of the paper's code, reproduced here:

- the real set is (conditioning + ground-truth frames) and the generated set
  is (the same conditioning frames + one **random** sample), see
  :func:`fvd_videos`;
- frames are stored as bytes first (``x.mul(255).byte()``, i.e. truncated),
  resized bilinearly to 224 x 224 with TensorFlow 1's ``resize_bilinear``
  (``align_corners=False`` and no half-pixel centres), scaled to [-1, 1];
  grayscale is repeated to RGB;
- embeddings are the I3D logits averaged over time, computed 16 videos at a
  time (the TF code padded the last batch; in eval mode the batch does not
  change the embeddings, so no padding is needed here);
- the distance uses float64 statistics with unbiased covariances and the
  trace of the matrix square root, as TF-GAN's
  ``frechet_classifier_distance_from_activations`` does.

The I3D network and its weights are described in :mod:`srvp.metrics.i3d`. A
PyTorch I3D is not bit-identical to the TF-Hub model the paper used, so the
numbers are only approximately comparable with published FVDs.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .i3d import MIN_FRAMES, load_i3d

__all__ = [
    "frechet_distance",
    "frechet_distance_from_stats",
    "fvd",
    "fvd_videos",
    "gaussian_stats",
    "i3d_embeddings",
    "preprocess_for_i3d",
    "resize_bilinear_tf1",
]


def gaussian_stats(features):
    """Mean and unbiased covariance of a set of features, in float64.

    Parameters
    ----------
    features : array_like
        Features, shape ``(N, D)`` with ``N >= 2``.

    Returns
    -------
    mu : numpy.ndarray
        Mean, shape ``(D,)``.
    sigma : numpy.ndarray
        Covariance with the ``1 / (N - 1)`` normalisation, shape ``(D, D)``.
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features, got {features.shape}")
    mu = features.mean(axis=0)
    centred = features - mu
    return mu, centred.T @ centred / (features.shape[0] - 1)


def _sqrt_psd(mat, eps=1e-10):
    """Square root of a symmetric positive semi-definite matrix (eigh).

    As in TF-GAN, eigenvalues below ``eps`` are rounding noise around 0 and
    are not square-rooted (that would inflate ``1e-14`` to ``1e-7``); negative
    ones are set to 0.
    """
    eigval, eigvec = np.linalg.eigh((mat + mat.T) / 2)
    root = np.where(eigval < eps, np.clip(eigval, 0, None), np.sqrt(np.abs(eigval)))
    return (eigvec * root) @ eigvec.T


def frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b):
    """Fréchet distance between two Gaussians, in float64.

    ``Tr((S_a S_b)^(1/2))`` is computed as ``Tr((A S_b A)^(1/2))`` with
    ``A = S_a^(1/2)``: both matrices are symmetric, so symmetric
    eigen-decompositions suffice and no complex parts appear (TF-GAN's
    approach, including its treatment of eigenvalues below ``1e-10``).

    Parameters
    ----------
    mu_a, mu_b : array_like
        Means, shape ``(D,)``.
    sigma_a, sigma_b : array_like
        Covariances, shape ``(D, D)``.

    Returns
    -------
    float
        The squared Fréchet distance (what FID/FVD report).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a = np.asarray(sigma_a, np.float64)
    sigma_b = np.asarray(sigma_b, np.float64)
    root_a = _sqrt_psd(sigma_a)
    trace_sqrt = np.trace(_sqrt_psd(root_a @ sigma_b @ root_a))
    mean_term = np.sum((mu_a - mu_b) ** 2)
    return float(mean_term + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_sqrt)


def frechet_distance(features_a, features_b):
    """Fréchet distance between Gaussians fitted to two sets of features.

    Parameters
    ----------
    features_a, features_b : array_like
        Features, shapes ``(N_a, D)`` and ``(N_b, D)``.

    Returns
    -------
    float
        The squared Fréchet distance.
    """
    return frechet_distance_from_stats(
        *gaussian_stats(features_a), *gaussian_stats(features_b)
    )


def _tf1_resize_matrix(n_in, n_out, dtype, device):
    """Interpolation matrix ``(n_out, n_in)`` of TF1's legacy bilinear resize.

    Output index ``i`` samples the input at ``i * n_in / n_out`` (no half-pixel
    offset), between ``floor`` and ``min(floor + 1, n_in - 1)``.
    """
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    mat.index_put_((rows, lo), 1 - frac, accumulate=True)
    mat.index_put_((rows, hi), frac, accumulate=True)
    return mat.to(dtype=dtype, device=device)


def resize_bilinear_tf1(images, size):
    """Bilinear resize exactly as TensorFlow 1's ``tf.image.resize_bilinear``.

    The default TF1 op (``align_corners=False``, ``half_pixel_centers=False``),
    which the official FVD code used; it differs from PyTorch's
    ``F.interpolate(..., align_corners=False)`` by a sub-pixel shift.

    Parameters
    ----------
    images : torch.Tensor
        Images, shape ``(..., H, W)``.
    size : tuple of int
        Output ``(H_out, W_out)``.

    Returns
    -------
    torch.Tensor
        Resized images, shape ``(..., H_out, W_out)``.
    """
    h, w = images.shape[-2:]
    rows = _tf1_resize_matrix(h, size[0], images.dtype, images.device)
    cols = _tf1_resize_matrix(w, size[1], images.dtype, images.device)
    return rows @ images @ cols.T


def preprocess_for_i3d(video, size=224, resize="tf1", quantize=True):
    """Turn a project-layout video into I3D input.

    Parameters
    ----------
    video : torch.Tensor
        Videos, shape ``(T, B, C, H, W)`` in [0, 1], ``C`` in {1, 3}.
    size : int
        Output side (224 for I3D).
    resize : {"tf1", "torch"}
        ``"tf1"``: TensorFlow 1's legacy bilinear resize (official protocol);
        ``"torch"``: ``F.interpolate(mode="bilinear", align_corners=False)``,
        as in the VideoGPT / ``cd-fvd`` PyTorch FVD code.
    quantize : bool
        Truncate to 8-bit levels first, as the official code stored frames
        with ``x.mul(255).byte()`` before computing FVD.

    Returns
    -------
    torch.Tensor
        Shape ``(B, 3, T, size, size)`` in [-1, 1], float32.
    """
    nt, bsz, nc, h, w = video.shape
    if nc not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {nc}")
    x = video.float().clamp(0, 1) * 255
    if quantize:
        x = x.floor()  # what .byte() does to values in [0, 255]
    x = x.permute(1, 2, 0, 3, 4)  # (B, C, T, H, W)
    if resize == "tf1":
        x = resize_bilinear_tf1(x, (size, size))
    elif resize == "torch":
        flat = x.reshape(bsz * nc * nt, 1, h, w)
        x = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
        x = x.view(bsz, nc, nt, size, size)
    else:
        raise ValueError(f"unknown resize mode {resize!r}")
    x = 2 * x / 255 - 1
    return x.expand(-1, 3, -1, -1, -1) if nc == 1 else x


def i3d_embeddings(video, model, batch_size=16, **preprocess_kwargs):
    """I3D logits of every video, computed ``batch_size`` videos at a time.

    Parameters
    ----------
    video : torch.Tensor
        Videos, shape ``(T, B, C, H, W)`` in [0, 1], ``T >= 9``.
    model : torch.nn.Module
        Network mapping ``(b, 3, T, 224, 224)`` to ``(b, D)``, e.g. from
        :func:`srvp.metrics.i3d.load_i3d`.
    batch_size : int
        Videos per forward pass (16 in the official code).
    **preprocess_kwargs
        Passed to :func:`preprocess_for_i3d`.

    Returns
    -------
    torch.Tensor
        Embeddings, shape ``(B, D)``, float32 on the CPU.
    """
    if video.shape[0] < MIN_FRAMES:
        raise ValueError(
            f"I3D needs at least {MIN_FRAMES} frames, got {video.shape[0]}"
        )
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, video.shape[1], batch_size):
            chunk = video[:, i : i + batch_size].to(device)
            out.append(model(preprocess_for_i3d(chunk, **preprocess_kwargs)).cpu())
    return torch.cat(out).float()


def fvd_videos(x_cond, x_target, x_sample):
    """Real and generated sets of the SRVP FVD protocol.

    Parameters
    ----------
    x_cond : torch.Tensor
        Conditioning frames, shape ``(T_cond, B, C, H, W)``.
    x_target : torch.Tensor
        Ground-truth future, shape ``(T_pred, B, C, H, W)``.
    x_sample : torch.Tensor
        One random predicted future per video (not the best one), same shape
        as ``x_target``.

    Returns
    -------
    real, fake : torch.Tensor
        ``cat(x_cond, x_target)`` and ``cat(x_cond, x_sample)`` along time,
        shape ``(T_cond + T_pred, B, C, H, W)``.
    """
    return torch.cat([x_cond, x_target]), torch.cat([x_cond, x_sample])


def fvd(real, fake, model=None, weights=None, batch_size=16, **preprocess_kwargs):
    """Fréchet Video Distance between two sets of videos.

    Parameters
    ----------
    real, fake : torch.Tensor
        Videos, shape ``(T, B, C, H, W)`` in [0, 1] (``B`` may differ), see
        :func:`fvd_videos` for the SRVP sets.
    model : torch.nn.Module, optional
        Embedding network; by default ``load_i3d(weights)``, which raises a
        :class:`FileNotFoundError` explaining where to get the weights.
    weights : str or os.PathLike, optional
        Path to ``i3d_pretrained_400.pt`` when ``model`` is not given.
    batch_size : int
        Videos per forward pass.
    **preprocess_kwargs
        Passed to :func:`preprocess_for_i3d` (``resize``, ``quantize``).

    Returns
    -------
    float
        FVD (lower is better). Only approximately comparable with the paper's
        TF-Hub numbers, see the module docstring.
    """
    if model is None:
        model = load_i3d(weights)
    emb_real = i3d_embeddings(real, model, batch_size, **preprocess_kwargs)
    emb_fake = i3d_embeddings(fake, model, batch_size, **preprocess_kwargs)
    return frechet_distance(emb_real, emb_fake)
