"""Each loss term against its closed form from torch.distributions."""
import math

import pytest
import torch
from helpers import tiny, video
from torch import distributions as D

from srvp import elbo_loss
from srvp.loss import gaussian_nll, kl_normal, kl_standard_normal
from srvp.model import normal_scale


def _normal(params):
    loc, raw = params.chunk(2, -1)
    return D.Normal(loc, normal_scale(raw))


@pytest.mark.parametrize("scale", [1.0, 0.2, 0.71])  # smmnist, kth/human, bair
def test_gaussian_nll_is_the_official_one_to_the_bit(scale):
    """The official loss is ``-Normal(x_hat, obs_scale).log_prob(x)``: values and
    gradients must be equal, not merely close, at every preset's scale."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 1, 64, 64)
    ours_in = torch.rand_like(x, requires_grad=True)
    ref_in = ours_in.detach().clone().requires_grad_(True)
    ours = gaussian_nll(ours_in, x, scale).sum()
    ref = -D.Normal(ref_in, scale).log_prob(x).sum()
    ours.backward()
    ref.backward()
    assert torch.equal(ours, ref)
    assert torch.equal(ours_in.grad, ref_in.grad)


def test_kl_terms_match_distributions_and_are_nonnegative():
    q, p = torch.randn(7, 3, 10) * 2, torch.randn(7, 3, 10) * 2
    torch.testing.assert_close(kl_normal(q, p), D.kl_divergence(_normal(q), _normal(p)))
    ref = D.kl_divergence(_normal(q), D.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_standard_normal(q), ref)
    assert (kl_normal(q, p) >= -1e-6).all() and (kl_standard_normal(q) >= -1e-6).all()
    assert kl_normal(q, q).abs().max() < 1e-5


@pytest.mark.parametrize("k", [1, 2])
def test_elbo_loss_is_the_official_sum(k):
    model, cfg = tiny("smoke", n_euler_steps=k, obs_scale=0.5, beta_y=1.5,
                      beta_z=2.0, l2_res=0.7)
    x = video(cfg, bsz=3)
    out = model(x)
    terms = elbo_loss(out, x, cfg)
    b = 3
    nll = -D.Normal(out.x_hat, 0.5).log_prob(x).sum() / b
    kl_y = D.kl_divergence(_normal(out.q_y1_params), D.Normal(0.0, 1.0)).sum() / b
    kl_z = D.kl_divergence(_normal(out.q_z_params), _normal(out.p_z_params)).sum() / b
    l2 = torch.stack([r.norm(dim=-1) for r in out.res]).sum() / b
    assert out.res.shape[0] == (len(x) - 1) * k  # every sub-step, dt included
    torch.testing.assert_close(terms.nll, nll)
    torch.testing.assert_close(terms.kl_y, kl_y)
    torch.testing.assert_close(terms.kl_z, kl_z)
    torch.testing.assert_close(terms.l2_res, l2)
    torch.testing.assert_close(terms.loss, nll + 1.5 * kl_y + 2.0 * kl_z + 0.7 * l2)


def test_nll_constant_per_pixel():
    x = torch.rand(2, 2, 1, 64, 64)
    per_pixel = gaussian_nll(x, x, 1.0)
    assert torch.allclose(per_pixel, torch.full_like(x, 0.5 * math.log(2 * math.pi)))


def test_loss_refuses_intermediate_frames():
    model, cfg = tiny("smoke", n_euler_steps=2)
    x = video(cfg)
    with pytest.raises(ValueError, match="intermediate"):
        elbo_loss(model(x, intermediate=True), x, cfg)
