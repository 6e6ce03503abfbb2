"""The evaluation fast path of the decoders: BatchNorm folded into the
convolutions, channels-last tensors (srvp.nets.fused_forward)."""
import pytest
import torch
from torch import nn

from srvp import SRVP, preset
from srvp.nets import fused_forward, make_decoder


def _random_statistics_(module: nn.Module) -> None:
    """BatchNorm with non-trivial running statistics and affine parameters, so a
    wrong fold cannot pass by accident."""
    g = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


@pytest.mark.parametrize("archi,skip,nc", [("dcgan", False, 1), ("dcgan", True, 3),
                                           ("vgg", True, 1), ("vgg", False, 3)])
def test_fused_decoder_equals_plain_decoder(archi, skip, nc):
    torch.manual_seed(0)
    dec = make_decoder(archi, nc, 12, 4, skip).eval()
    _random_statistics_(dec)
    h = torch.randn(5, 12)
    skips = None
    if skip:  # encoder feature maps, deepest first
        skips = [torch.randn(5, c, s, s) for c, s in ((32, 4), (16, 8), (8, 16),
                                                      (4, 32))]
        if archi == "vgg":
            skips = [torch.randn(5, c, s, s) for c, s in ((32, 8), (16, 16), (8, 32),
                                                          (4, 64))]
    with torch.no_grad():
        plain = dec(h, skips)
        fast = dec(h, skips, fused=True)
    assert fast.shape == plain.shape == (5, nc, 64, 64)
    assert fast.is_contiguous()
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


def test_fused_decoding_needs_eval_mode():
    dec = make_decoder("dcgan", 1, 12, 4, False).train()
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        dec(torch.randn(2, 12), fused=True)


def test_fused_forward_follows_parameter_changes_and_is_differentiable():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(2, 3, 3, 1, 1, bias=False), nn.BatchNorm2d(3),
                          nn.LeakyReLU(0.2)).eval()
    x = torch.randn(2, 2, 8, 8)
    before = fused_forward(block, x)
    with torch.no_grad():
        block[1].bias.add_(1.0)  # nothing is cached: the output must move
    after = fused_forward(block, x)
    torch.testing.assert_close(after, block(x))
    assert not torch.allclose(before, after)
    after.sum().backward()
    assert block[0].weight.grad is not None and block[1].weight.grad is not None


@pytest.mark.parametrize("name", ["smmnist", "kth"])
def test_predict_uses_the_fast_path_with_the_same_frames(name):
    """predict decodes with fused=True: same frames as the plain decoder for the
    same draws of the latent variables."""
    cfg = preset(name, nf=4, nhx=16, nh_inf=16, nh_res=16)
    model = SRVP(cfg).eval()
    _random_statistics_(model.decoder)
    x = torch.rand(cfg.nt_cond, 2, cfg.nc, 64, 64)
    torch.manual_seed(1)
    fast = model.predict(x, 3, n_samples=2)
    plain_decode = model.decode

    def plain(w, y, skips, fused=False):
        return plain_decode(w, y, skips, fused=False)
    model.decode = plain
    torch.manual_seed(1)
    slow = model.predict(x, 3, n_samples=2)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
