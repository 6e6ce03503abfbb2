"""Shapes, Euler semantics, prediction, content swap and input checks."""
import math

import numpy as np
import pytest
import torch
from helpers import tiny, video

from srvp import elbo_loss
from srvp.config import MAX_EULER_STEPS, check_euler_steps
from srvp.evaluate import Protocol
from srvp.nets import check_video

PRESETS = ["smoke", "smmnist", "kth", "human", "bair"]


@pytest.mark.parametrize("name", PRESETS)
def test_forward_shapes(name):
    model, cfg = tiny(name)
    x = video(cfg, nt=cfg.nt_inf + 3)
    out = model(x)
    nt, b, k = len(x), x.shape[1], cfg.n_euler_steps
    assert out.x_hat.shape == x.shape
    assert out.y.shape == (nt, b, cfg.ny)
    assert out.z.shape == (nt - 1, b, cfg.nz)
    assert out.w.shape == (b, cfg.nh_inf)
    assert out.q_y1_params.shape == (b, 2 * cfg.ny)
    assert out.q_z_params.shape == out.p_z_params.shape == (nt - 1, b, 2 * cfg.nz)
    assert out.res.shape == ((nt - 1) * k, b, cfg.ny)
    assert 0 <= out.x_hat.min() and out.x_hat.max() <= 1


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_dt_integer_times_and_intermediates(k):
    model, cfg = tiny()
    x = video(cfg, nt=5)
    model.eval()
    out = model(x, n_euler_steps=k)
    assert out.x_hat.shape[0] == 5 and out.res.shape[0] == 4 * k
    full = model(x, n_euler_steps=k, intermediate=True)
    assert full.y.shape[0] == full.x_hat.shape[0] == (5 - 1) * k + 1


def test_intermediate_states_contain_integer_states():
    model, cfg = tiny()
    x = video(cfg, nt=4)
    model.eval()
    torch.manual_seed(1)
    coarse = model(x, n_euler_steps=4)
    torch.manual_seed(1)
    fine = model(x, n_euler_steps=4, intermediate=True)
    torch.testing.assert_close(fine.y[::4], coarse.y)


def test_residual_step_is_euler():
    model, cfg = tiny()
    y, z = torch.randn(3, cfg.ny), torch.randn(3, cfg.nz)
    y_next, res = model._residual_step(y, z, 0.5)
    expected = 0.5 * model.dynamics(torch.cat([y, z], 1))
    torch.testing.assert_close(res, expected)
    torch.testing.assert_close(y_next, y + expected)


def test_generate_sums_residuals():
    model, cfg = tiny()
    model.eval()
    y1 = torch.randn(2, cfg.ny)
    y, z, q, p, res = model.generate(y1, None, 4, 3, intermediate=True)
    assert q is None and z.shape == (3, 2, cfg.nz) and p.shape == (3, 2, 2 * cfg.nz)
    torch.testing.assert_close(y[-1], y1 + res.sum(0), rtol=1e-5, atol=1e-5)


def test_z_is_shared_within_an_interval():
    model, cfg = tiny()
    model.eval()
    y1 = torch.randn(2, cfg.ny)
    y, z, _, _, res = model.generate(y1, None, 3, 2, intermediate=True)
    # sub-step 2 of interval 1 uses z[0] from y after sub-step 1
    torch.testing.assert_close(res[1], 0.5 * model.dynamics(torch.cat([y[1], z[0]], 1)))
    torch.testing.assert_close(res[3], 0.5 * model.dynamics(torch.cat([y[3], z[1]], 1)))


@pytest.mark.parametrize("k", [0, -1, 0.5, 2.0, "2", True])
def test_the_number_of_euler_steps_is_checked_once_with_one_message(k):
    """K is an integer >= 1 wherever it enters: the config, the model's
    methods and the evaluation protocol raise the same one-line error."""
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_cond)
    calls = [lambda: check_euler_steps(k),
             lambda: model(x, n_euler_steps=k),
             lambda: model.predict(x, 2, n_euler_steps=k),
             lambda: model.predict(x, 2, n_euler_steps_cond=k),
             lambda: model.generate(torch.zeros(2, cfg.ny), None, 3, k),
             lambda: Protocol(2, 3, 4, n_euler_steps=k)]
    if type(k) is int:  # a config field of another type fails its type check
        calls.append(lambda: cfg.replace(n_euler_steps=k))
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == f"n_euler_steps={k!r}: the Euler steps per " \
            f"frame interval must be an integer K from 1 to {MAX_EULER_STEPS} " \
            "(dt = 1/K)"
    assert check_euler_steps(3) == check_euler_steps(np.int64(3)) == 3


def test_training_cannot_run_past_the_data():
    model, cfg = tiny()
    with pytest.raises(ValueError, match="observed frames"):
        model(video(cfg, nt=4), nt=6)


@pytest.mark.parametrize("k", [1, 2])
def test_predict_shapes_and_chunking(k):
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_cond, bsz=3)
    out = model.predict(x, nt_pred=4, n_samples=5, n_euler_steps=k, chunk_size=6)
    assert out.shape == (5, 4, 3, cfg.nc, 64, 64)
    inter = model.predict(x, nt_pred=4, n_samples=2, n_euler_steps=k,
                          intermediate=True)
    assert inter.shape == (2, 4 * k, 3, cfg.nc, 64, 64)
    assert model.training  # mode restored


def test_predict_samples_differ_and_chunking_is_exact():
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_cond)
    torch.manual_seed(3)
    a = model.predict(x, 3, n_samples=4, chunk_size=2)  # 1 sample per chunk
    assert not torch.allclose(a[0], a[1])
    # chunks change the order of the random draws, not what is computed from
    # them: with every Gaussian a point mass, one sample per chunk (chunk_size=2
    # with 2 videos) and all samples in one chunk give the same frames
    _point_masses(model)
    one = model.predict(x, 3, n_samples=4, chunk_size=2)
    every = model.predict(x, 3, n_samples=4, chunk_size=256)
    assert one.shape == every.shape == (4, 3, 2, cfg.nc, 64, 64)
    torch.testing.assert_close(one, every, rtol=1e-5, atol=1e-6)
    # and the video axis stays the video axis: swapping the videos swaps futures
    swapped = model.predict(x.flip(1), 3, n_samples=4, chunk_size=2)
    torch.testing.assert_close(swapped, every.flip(2), rtol=1e-5, atol=1e-6)


def _point_masses(model):
    """Make q(y1), q(z) and p(z) point masses: prediction becomes deterministic."""
    with torch.no_grad():
        for head in (model.q_y.module[-1][-1], model.p_z.module[-1][-1], model.q_z):
            head.bias[head.out_features // 2:] = -200.0
            head.weight[head.out_features // 2:] = 0.0


@pytest.mark.parametrize("k", [1, 2, 4])
def test_predict_matches_official_loop_in_distribution(k):
    """With a deterministic model (zero-variance posteriors and prior), the
    batched predictor equals the official per-sample test loop: forward on the
    conditioning frames with the *training* Euler step, then generate from the
    last state with k Euler steps per frame (dt = 1/k), then decode."""
    model, cfg = tiny()
    model.eval()
    _point_masses(model)
    x = video(cfg, nt=cfg.nt_cond + 3)
    x_cond = x[: cfg.nt_cond]
    ours = model.predict(x_cond, 3, n_samples=2, n_euler_steps=k)
    with torch.no_grad():
        out = model(x_cond)  # conditioning at the training step
        y = model.generate(out.y[-1], None, 4, k)[0][1:]  # prediction at 1/k
        ref = model.decode(out.w, y, model.encode(x_cond)[1]).clamp(0, 1)
    torch.testing.assert_close(ours[0], ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours[1], ref, rtol=1e-4, atol=1e-5)
    if k > 1:  # one step size throughout is the other, explicit, choice
        same = model.predict(x_cond, 3, n_samples=1, n_euler_steps=k,
                             n_euler_steps_cond=k)
        with torch.no_grad():
            out = model(x_cond, n_euler_steps=k)
            y = model.generate(out.y[-1], None, 4, k)[0][1:]
            ref_same = model.decode(out.w, y, model.encode(x_cond)[1]).clamp(0, 1)
        torch.testing.assert_close(same[0], ref_same, rtol=1e-4, atol=1e-5)
        # the two semantics differ: the states reached at the last conditioning
        # frame (an untrained decoder hardly shows it in the frames)
        with torch.no_grad():
            gap = (model(x_cond).y[-1] - out.y[-1]).abs().max()
        assert gap > 1e-3


def test_train_and_eval_frame_choice():
    model, cfg = tiny("kth")  # skip connections, nt_inf = 3
    x = video(cfg, nt=6)
    model.eval()
    hx, skips = model.encode(x)
    _, last = model.encode(x[-1:])
    for s, s_last in zip(skips, last):
        torch.testing.assert_close(s, s_last)
    hx = torch.randn(6, 2, cfg.nhx)  # distinct codes (the untrained encoder's are ~0)
    torch.testing.assert_close(model.infer_w(hx), model.infer_w(hx[-cfg.nt_inf:]))
    model.train()
    ws = {tuple(model.infer_w(hx).flatten().tolist()) for _ in range(5)}
    assert len(ws) > 1  # random frames in training


def test_content_swap_keeps_dynamics():
    model, cfg = tiny("kth")
    a, b = video(cfg, nt=5), video(cfg, nt=5)
    torch.manual_seed(7)
    x_ab, y_ab = model.swap_content(a, b)
    torch.manual_seed(7)
    x_aa, y_aa = model.swap_content(a, a)
    torch.testing.assert_close(y_ab, y_aa)
    assert x_ab.shape == a.shape and not torch.allclose(x_ab, x_aa)


def test_every_parameter_gets_a_gradient():
    for name in ("smoke", "kth"):
        model, cfg = tiny(name)
        x = video(cfg, nt=cfg.nt_inf + 2)
        elbo_loss(model(x), x, cfg).loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None
                   or not p.grad.abs().sum() > 0]
        assert not missing, missing


def test_seeded_runs_are_identical():
    def run():
        torch.manual_seed(11)
        model, cfg = tiny()
        x = video(cfg)
        return elbo_loss(model(x), x, cfg).loss
    assert run().item() == run().item()


def test_a_few_adam_steps_lower_the_loss():
    torch.manual_seed(0)
    model, cfg = tiny()
    x = 0.8 + 0.2 * video(cfg, bsz=4)  # bright frames: a fit the model can make
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        torch.manual_seed(1)  # same noise each step: a deterministic objective
        loss = elbo_loss(model(x), x, cfg).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the Gaussian constant 0.5 log(2 pi) per pixel cannot go down: leave it out
    const = 0.5 * math.log(2 * math.pi) * x[:, 0].numel()
    assert losses[-1] - const < 0.5 * (losses[0] - const)


@pytest.mark.parametrize("bad, match", [
    (torch.rand(2, 1, 64, 64), "4-d"),
    (torch.rand(6, 2, 3, 64, 64), r"\(T, B, 1, 64, 64\)"),
    (torch.rand(6, 2, 1, 32, 32), r"\(T, B, 1, 64, 64\)"),
    (torch.rand(1, 2, 1, 64, 64), "at least 2 frames"),
    (torch.rand(6, 2, 1, 64, 64) * 255, r"\[0, 1\]"),
    (torch.full((6, 2, 1, 64, 64), float("nan")), "NaN"),
    (torch.zeros(6, 2, 1, 64, 64, dtype=torch.uint8), "float tensor"),
])
def test_bad_input_is_named(bad, match):
    model, cfg = tiny()
    with pytest.raises(ValueError, match=match):
        model(bad)
    with pytest.raises(ValueError, match=match):
        model.predict(bad, 2)


def test_shape_check_reads_no_values():
    """On a device, the training forward checks shapes without reading values
    back (which would synchronise): a meta tensor has no values to read."""
    _, cfg = tiny()
    x = torch.empty(6, 2, 1, 64, 64, device="meta")
    check_video(x, cfg, values=False)  # must not touch the values
    with pytest.raises(ValueError, match="at least 7 frames"):
        check_video(x, cfg, min_frames=7, values=False)
    with pytest.raises((NotImplementedError, RuntimeError)):
        check_video(x, cfg)  # reading values of a meta tensor fails
