"""Inflated 3D Inception-v1 (I3D, Carreira & Zisserman, 2017) for FVD.

FVD (book ch. 5) embeds each video with the Kinetics-400 I3D network and uses
its logits layer, averaged over time, as a 400-d feature. The SRVP paper ran
the TF-Hub module ``deepmind/i3d-kinetics-400/1`` (tensor
``RGB/inception_i3d/Mean:0``). This file re-implements that network in
PyTorch: TensorFlow "SAME" padding, BatchNorm without scale, a
``[2, 7, 7]`` valid average pool before a 1x1x1 logits convolution, and the
mean of the logits over the remaining time steps.

Weights
-------
The expected file is ``i3d_pretrained_400.pt``, the PyTorch conversion of the
TF-Hub module made by VideoGPT (Yan et al., 2021) and reused by TATS and the
``cd-fvd`` package. It is a plain ``state_dict`` (an ``OrderedDict`` of
float32 tensors) with keys such as::

    Conv3d_1a_7x7.conv3d.weight          (64, 3, 7, 7, 7)
    Conv3d_1a_7x7.bn.weight / .bias / .running_mean / .running_var   (64,)
    Mixed_3b.b0.conv3d.weight            branches b0, b1a, b1b, b2a, b2b, b3b
    Mixed_5c.b3b.bn.running_var
    logits.conv3d.weight                 (400, 1024, 1, 1, 1)
    logits.conv3d.bias                   (400,)

``bn.weight`` is all ones (the TF model has no BatchNorm scale). Files saved
without ``num_batches_tracked`` buffers also load strictly, because
``BatchNorm`` fills them in for state dicts that carry no version metadata.
:class:`InceptionI3d` has exactly these keys, so the file loads with
``strict=True``. Download (about 50 MB; the URL used by ``cd-fvd``):
:data:`I3D_URL`. The key layout was checked against the public conversion
code; the tests build random-weight files in that layout, since the real
file cannot be downloaded where they run.

Comparability
-------------
A PyTorch conversion is not bit-identical to the TF-Hub graph (different
convolution kernels and float rounding; the paper also used TensorFlow's
legacy bilinear resize, reproduced in :mod:`srvp.metrics.fvd`). FVDs computed
here are therefore only approximately comparable with the published ones.
BatchNorm uses ``eps=1e-3`` (Sonnet 1's default, as in the TF graph);
VideoGPT and ``cd-fvd`` use ``1e-5``, which moves FVD slightly.
"""

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["I3D_FILE", "I3D_URL", "MIN_FRAMES", "InceptionI3d", "load_i3d"]

I3D_FILE = "i3d_pretrained_400.pt"
I3D_URL = "https://github.com/songweige/TATS/raw/main/tats/fvd/" + I3D_FILE
MIN_FRAMES = 9  # the time axis is divided by 8, then pooled by a window of 2

# (name, output channels of b0, b1a, b1b, b2a, b2b, b3b) of each Inception block
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_pad(x, kernel, stride, value=0.0):
    """Pad a ``(B, C, T, H, W)`` tensor like TensorFlow's ``padding="SAME"``.

    The output of a stride-``s`` window then has ``ceil(n / s)`` steps; when
    the total padding is odd, the extra element goes at the end.
    """
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """3-D convolution with SAME padding, then BatchNorm and ReLU (optional).

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel : tuple of int
        Kernel size ``(kT, kH, kW)``.
    stride : tuple of int
        Stride ``(sT, sH, sW)``.
    bn_eps : float or None
        BatchNorm epsilon; ``None`` for a plain biased convolution without
        BatchNorm or ReLU (the logits layer).
    """

    def __init__(self, c_in, c_out, kernel=(1, 1, 1), stride=(1, 1, 1), bn_eps=1e-3):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(c_in, c_out, kernel, stride, bias=bn_eps is None)
        self.bn = None if bn_eps is None else nn.BatchNorm3d(c_out, eps=bn_eps)

    def forward(self, x):
        """Map ``(B, c_in, T, H, W)`` to ``(B, c_out, ceil(T/sT), ...)``."""
        x = self.conv3d(same_pad(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


def max_pool_same(x, kernel, stride):
    """Max pooling with TensorFlow SAME padding (padding never wins the max)."""
    return F.max_pool3d(same_pad(x, kernel, stride, -math.inf), kernel, stride)


class InceptionBlock(nn.Module):
    """Inception module: four parallel branches concatenated on channels.

    Branches: 1x1x1 conv (``b0``); 1x1x1 then 3x3x3 (``b1a``, ``b1b``);
    1x1x1 then 3x3x3 (``b2a``, ``b2b``); 3x3x3 max pool then 1x1x1 (``b3b``).
    """

    def __init__(self, c_in, widths, bn_eps=1e-3):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(c_in, w0, bn_eps=bn_eps)
        self.b1a = Unit3D(c_in, w1a, bn_eps=bn_eps)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(c_in, w2a, bn_eps=bn_eps)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3), bn_eps=bn_eps)
        self.b3b = Unit3D(c_in, w3b, bn_eps=bn_eps)
        self.c_out = w0 + w1b + w2b + w3b

    def forward(self, x):
        """Map ``(B, c_in, T, H, W)`` to ``(B, c_out, T, H, W)``."""
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        branches = [
            self.b0(x),
            self.b1b(self.b1a(x)),
            self.b2b(self.b2a(x)),
            self.b3b(pooled),
        ]
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """I3D network returning the time-averaged logits used by FVD.

    Parameters
    ----------
    num_classes : int
        Number of logits (400 for Kinetics-400).
    in_channels : int
        Input channels (3, RGB).
    bn_eps : float
        BatchNorm epsilon (``1e-3`` as in the TF graph; see module docstring).

    Notes
    -----
    Input: ``(B, 3, T, 224, 224)`` in [-1, 1] with ``T >= 9``. Five stride-2
    stages divide space by 32 (224 -> 7) and time by 8; the final valid
    ``[2, 7, 7]`` average pool needs ``ceil(T / 8) >= 2`` and
    ``ceil(H / 32) >= 7``, so shorter or smaller inputs raise an error. The
    logits of the ``ceil(T / 8) - 1`` pooled time steps are averaged. Output:
    ``(B, num_classes)``.
    """

    def __init__(self, num_classes=400, in_channels=3, bn_eps=1e-3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps)
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        c_in = 192
        for name, widths in _MIXED.items():
            block = InceptionBlock(c_in, widths, bn_eps)
            self.add_module(name, block)
            c_in = block.c_out
        self.logits = Unit3D(c_in, num_classes, bn_eps=None)

    def features(self, x):
        """Run the trunk up to ``Mixed_5c``.

        Parameters
        ----------
        x : torch.Tensor
            Videos, shape ``(B, 3, T, H, W)`` in [-1, 1].

        Returns
        -------
        torch.Tensor
            Shape ``(B, 1024, ceil(T/8), ceil(H/32), ceil(W/32))``.
        """
        x = self.Conv3d_1a_7x7(x)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_2a_3x3
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_3a_3x3
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))  # MaxPool3d_4a_3x3
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))  # MaxPool3d_5a_2x2
        return self.Mixed_5c(self.Mixed_5b(x))

    def forward(self, x):
        """Time-averaged logits (the TF-Hub ``Mean:0`` tensor).

        Parameters
        ----------
        x : torch.Tensor
            Videos, shape ``(B, 3, T, 224, 224)`` in [-1, 1], ``T >= 9``.

        Returns
        -------
        torch.Tensor
            Logits, shape ``(B, num_classes)``.
        """
        if x.shape[2] < MIN_FRAMES or min(x.shape[-2:]) <= 192:
            raise ValueError(
                f"I3D needs (B, 3, T >= {MIN_FRAMES}, 224, 224) inputs (at least "
                f"193 pixels a side), got {tuple(x.shape)}"
            )
        h = self.features(x)
        h = F.avg_pool3d(h, (2, 7, 7), stride=1)  # valid pooling; dropout is off
        logits = self.logits(h)  # (B, classes, T', H', W')
        return logits.mean(dim=(3, 4)).mean(dim=2)  # squeeze space, average time


def _cached_i3d():
    """Path of the I3D weights in the torch hub cache (may not exist)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", I3D_FILE)


def _missing_i3d_error(path=None):
    """Build the error raised when no I3D weights can be found."""
    where = f"The file {path} does not exist. " if path else ""
    return FileNotFoundError(
        f"{where}FVD needs the Kinetics-400 I3D weights '{I3D_FILE}' (a PyTorch "
        f"conversion of TF-Hub deepmind/i3d-kinetics-400/1, from VideoGPT/TATS/"
        f"cd-fvd; about 50 MB) from {I3D_URL}. Either pass its path, "
        f"load_i3d(weights='path/to/{I3D_FILE}'); or copy it to "
        f"'{_cached_i3d()}' (set TORCH_HOME to choose the folder); or, online, "
        f"call load_i3d(allow_download=True)."
    )


#: Size cap of the I3D download (the file is about 50 MB).
I3D_MAX_BYTES = 256 * 2**20


def _check_i3d(path) -> None:
    """A downloaded file must be I3D's state dict: it loads strictly, or the
    download is refused before it enters the cache."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        InceptionI3d().load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"not the I3D weights: {str(err).splitlines()[0]}") from None


def load_i3d(weights=None, *, allow_download=False, device="cpu", bn_eps=1e-3):
    """Build :class:`InceptionI3d` and load Kinetics-400 weights.

    Looks for ``weights``, then ``$TORCH_HOME/hub/checkpoints/i3d_pretrained_400.pt``;
    with ``allow_download=True`` it downloads :data:`I3D_URL` to that cache.

    Parameters
    ----------
    weights : str or os.PathLike, optional
        Path to ``i3d_pretrained_400.pt`` (format in the module docstring).
    allow_download : bool
        Download the file when it is not found locally.
    device : torch.device or str
        Device of the returned model.
    bn_eps : float
        BatchNorm epsilon (see module docstring).

    Returns
    -------
    InceptionI3d
        The network in eval mode, without gradients.
    """
    path = os.fspath(weights) if weights is not None else _cached_i3d()
    if not os.path.isfile(path):
        if weights is not None or not allow_download:
            raise _missing_i3d_error(path if weights is not None else None)
        from ..download import fetch

        fetch(I3D_URL, path, max_bytes=I3D_MAX_BYTES, check=_check_i3d)
    model = InceptionI3d(bn_eps=bn_eps)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)
