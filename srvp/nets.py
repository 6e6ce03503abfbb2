"""Building blocks: DCGAN-64 and VGG-64 encoders/decoders, the MLP (book ch. 2).

Module and attribute names follow the official implementation so that its
state dicts load with ``strict=True``. Every convolution has ``bias=False`` and
the blocks run convolution -> BatchNorm -> activation.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config


def conv_block(conv: nn.Module, act: str, bn: bool = True) -> nn.Sequential:
    """``conv`` followed by an optional BatchNorm and an activation."""
    layers = [conv]
    if bn:
        layers.append(nn.BatchNorm2d(conv.out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True) if act == "lrelu" else nn.Tanh())
    return nn.Sequential(*layers)


def _conv3(n_in: int, n_out: int) -> nn.Sequential:
    return conv_block(nn.Conv2d(n_in, n_out, 3, 1, 1, bias=False), "lrelu")


def _down4(n_in: int, n_out: int, bn: bool = True) -> nn.Sequential:
    return conv_block(nn.Conv2d(n_in, n_out, 4, 2, 1, bias=False), "lrelu", bn)


def _up4(n_in: int, n_out: int) -> nn.Sequential:
    return conv_block(nn.ConvTranspose2d(n_in, n_out, 4, 2, 1, bias=False), "lrelu")


class Encoder(nn.Module):
    """Shared forward pass: ``conv`` stages, then ``last_conv`` to a vector.

    ``forward(x)`` maps frames (N, C, 64, 64) to codes (N, nhx) in [-1, 1] and the
    output of every stage, deepest first (the decoder's skip connections).
    """

    conv: nn.ModuleList
    last_conv: nn.Module

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        skips = []
        h = x
        for stage in self.conv:
            h = stage(h)
            skips.append(h)
        return self.last_conv(h).flatten(1), skips[::-1]


class DCGANEncoder(Encoder):
    """Four stride-2 4x4 convolutions (64->32->16->8->4), then 4x4 to 1x1."""

    def __init__(self, nc: int, nhx: int, nf: int):
        super().__init__()
        self.conv = nn.ModuleList([
            _down4(nc, nf, bn=False),
            _down4(nf, nf * 2),
            _down4(nf * 2, nf * 4),
            _down4(nf * 4, nf * 8),
        ])
        self.last_conv = conv_block(nn.Conv2d(nf * 8, nhx, 4, 1, 0, bias=False), "tanh")


class VGGEncoder(Encoder):
    """VGG-style 3x3 convolutions with max-pooling between resolutions."""

    def __init__(self, nc: int, nhx: int, nf: int):
        super().__init__()
        pool = lambda: nn.MaxPool2d(2, 2, 0)  # noqa: E731
        self.conv = nn.ModuleList([
            nn.Sequential(_conv3(nc, nf), _conv3(nf, nf)),
            nn.Sequential(pool(), _conv3(nf, nf * 2), _conv3(nf * 2, nf * 2)),
            nn.Sequential(pool(), _conv3(nf * 2, nf * 4), _conv3(nf * 4, nf * 4),
                          _conv3(nf * 4, nf * 4)),
            nn.Sequential(pool(), _conv3(nf * 4, nf * 8), _conv3(nf * 8, nf * 8),
                          _conv3(nf * 8, nf * 8)),
        ])
        self.last_conv = nn.Sequential(
            pool(), conv_block(nn.Conv2d(nf * 8, nhx, 4, 1, 0, bias=False), "tanh"))


class Decoder(nn.Module):
    """Shared forward pass: a 1x1 input vector up to (C, 64, 64), then a sigmoid.

    With skip connections, each stage first concatenates the matching encoder
    feature map along the channels.
    """

    first_upconv: nn.Module
    conv: nn.ModuleList

    def __init__(self, skip: bool):
        super().__init__()
        self.skip = skip

    def forward(self, h: torch.Tensor, skips: Optional[List[torch.Tensor]] = None,
                fused: bool = False) -> torch.Tensor:
        """Frames (N, C, 64, 64) from vectors ``h`` (N, n_in).

        ``fused=True`` (evaluation mode only) runs the same network with every
        BatchNorm folded into the convolution before it and channels-last
        tensors: the same frames up to float rounding, faster on CPU (see
        :func:`fused_forward`).
        """
        if self.skip != (skips is not None):
            raise ValueError("this decoder was built with skip=%s but was given %s"
                             % (self.skip, "skips" if skips is not None else "none"))
        if fused and self.training:
            raise ValueError("fused decoding folds the BatchNorm running statistics "
                             "and needs evaluation mode: call .eval() first")
        run = fused_forward if fused else (lambda module, x: module(x))
        h = h[:, :, None, None]
        if fused:
            h = h.contiguous(memory_format=torch.channels_last)
            skips = None if skips is None else [
                s.contiguous(memory_format=torch.channels_last) for s in skips]
        h = run(self.first_upconv, h)
        for i, stage in enumerate(self.conv):
            if skips is not None:
                h = torch.cat([h, skips[i]], 1)
            h = run(stage, h)
        return torch.sigmoid(h).contiguous()


class DCGANDecoder(Decoder):
    """Mirror of :class:`DCGANEncoder` with transposed convolutions."""

    def __init__(self, nc: int, n_in: int, nf: int, skip: bool):
        super().__init__(skip)
        k = 2 if skip else 1
        self.first_upconv = conv_block(
            nn.ConvTranspose2d(n_in, nf * 8, 4, 1, 0, bias=False), "lrelu")
        self.conv = nn.ModuleList([
            _up4(nf * 8 * k, nf * 4),
            _up4(nf * 4 * k, nf * 2),
            _up4(nf * 2 * k, nf),
            nn.ConvTranspose2d(nf * k, nc, 4, 2, 1, bias=False),
        ])


class VGGDecoder(Decoder):
    """Mirror of :class:`VGGEncoder` with nearest-neighbour upsampling."""

    def __init__(self, nc: int, n_in: int, nf: int, skip: bool):
        super().__init__(skip)
        k = 2 if skip else 1
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        self.first_upconv = nn.Sequential(
            conv_block(nn.ConvTranspose2d(n_in, nf * 8, 4, 1, 0, bias=False), "lrelu"),
            up())
        self.conv = nn.ModuleList([
            nn.Sequential(_conv3(nf * 8 * k, nf * 8), _conv3(nf * 8, nf * 8),
                          _conv3(nf * 8, nf * 4), up()),
            nn.Sequential(_conv3(nf * 4 * k, nf * 4), _conv3(nf * 4, nf * 4),
                          _conv3(nf * 4, nf * 2), up()),
            nn.Sequential(_conv3(nf * 2 * k, nf * 2), _conv3(nf * 2, nf), up()),
            nn.Sequential(_conv3(nf * k, nf),
                          nn.ConvTranspose2d(nf, nc, 3, 1, 1, bias=False)),
        ])


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    """The leaf modules of nested ``Sequential`` containers, in call order."""
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _leaves(child)
    else:
        yield module


def _folded(conv: nn.Module, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``conv`` followed by ``bn`` in evaluation mode.

    BatchNorm computes ``(u - mean) * s + beta`` with ``s = gamma / sqrt(var +
    eps)``, an affine map per output channel, so it merges into the convolution:
    the weight of output channel ``o`` is scaled by ``s[o]`` and the bias becomes
    ``beta - mean * s`` (plus ``s`` times the convolution's own bias, if any).
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    out_axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape = [1, 1, 1, 1]
    shape[out_axis] = -1
    weight = conv.weight * scale.view(shape)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return weight.contiguous(memory_format=torch.channels_last), bias


def _conv(conv: nn.Module, x: torch.Tensor, weight: torch.Tensor,
          bias: Optional[torch.Tensor]) -> torch.Tensor:
    if isinstance(conv, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, weight, bias, conv.stride, conv.padding,
                                  conv.output_padding, conv.groups, conv.dilation)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation,
                    conv.groups)


def fused_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a ``Sequential`` tree with each conv -> BatchNorm pair folded into one
    convolution (evaluation mode: BatchNorm uses its running statistics).

    The folded weights are recomputed at every call (a few element-wise
    products, negligible next to the convolutions), so the result always
    follows the current parameters and nothing is cached. Differentiable.
    """
    leaves = list(_leaves(module))
    i = 0
    while i < len(leaves):
        leaf = leaves[i]
        nxt = leaves[i + 1] if i + 1 < len(leaves) else None
        if isinstance(leaf, (nn.Conv2d, nn.ConvTranspose2d)):
            if isinstance(nxt, nn.BatchNorm2d):
                x = _conv(leaf, x, *_folded(leaf, nxt))
                i += 2
                continue
            weight = leaf.weight.contiguous(memory_format=torch.channels_last)
            x = _conv(leaf, x, weight, leaf.bias)
        else:
            x = leaf(x)
        i += 1
    return x


def make_encoder(archi: str, nc: int, nhx: int, nf: int) -> Encoder:
    return {"dcgan": DCGANEncoder, "vgg": VGGEncoder}[archi](nc, nhx, nf)


def make_decoder(archi: str, nc: int, n_in: int, nf: int, skip: bool) -> Decoder:
    return {"dcgan": DCGANDecoder, "vgg": VGGDecoder}[archi](nc, n_in, nf, skip)


class MLP(nn.Module):
    """``n_layers`` Linear layers with a ReLU before every one but the first.

    Lin - ReLU - Lin - ... - Lin, no output activation. Each layer sits in its
    own ``nn.Sequential`` inside ``self.module``, as in the official code.
    """

    def __init__(self, n_in: int, n_hid: int, n_out: int, n_layers: int):
        super().__init__()
        dims = [n_in] + [n_hid] * (n_layers - 1) + [n_out]
        blocks = [nn.Sequential(nn.Linear(dims[0], dims[1]))]
        blocks += [nn.Sequential(nn.ReLU(inplace=True), nn.Linear(a, b))
                   for a, b in zip(dims[1:-1], dims[2:])]
        self.module = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def init_encdec_(module: nn.Module, std: float = 0.02) -> None:
    """Official encoder/decoder init: N(0, std) weights, BatchNorm N(1, std)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def init_orthogonal_(module: nn.Module, gain: float) -> None:
    """Orthogonal Linear weights with ``gain``, zero biases (residual MLP)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------ inputs
def check_video(x: torch.Tensor, cfg: Config, min_frames: int = 1,
                values: bool = True) -> None:
    """Raise ``ValueError`` unless ``x`` is a (T, B, C, 64, 64) video in [0, 1].

    ``values=False`` checks the type and shape only: reading the values back
    would make a GPU wait at every training step, so ``forward`` checks values
    on the CPU only; ``predict`` and ``swap_content`` always check them.
    """
    want = f"(T, B, {cfg.nc}, {cfg.nx}, {cfg.nx}) with T >= {min_frames}"
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"expected a float tensor of shape {want}, got "
                         f"{type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.dim() != 5:
        raise ValueError(f"expected a video of shape {want} (time first), got a "
                         f"{x.dim()}-d tensor of shape {tuple(x.shape)}")
    if x.shape[2] != cfg.nc or x.shape[3:] != (cfg.nx, cfg.nx):
        raise ValueError(f"expected shape {want}, got {tuple(x.shape)}")
    if x.shape[0] < min_frames:
        raise ValueError(f"expected at least {min_frames} frames (nt_inf), got "
                         f"{x.shape[0]}: shape {tuple(x.shape)}, want {want}")
    if not values:
        return
    lo, hi = torch.aminmax(x.detach())
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise ValueError("the video holds NaN or infinite values")
    if lo < 0 or hi > 1:
        raise ValueError(f"pixel values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]: "
                         "divide uint8 frames by 255")
