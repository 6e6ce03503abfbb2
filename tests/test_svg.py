"""The SVG-LP baseline: shapes, official behaviour, loss, prediction, and its
place in the shared training, checkpoint and evaluation code."""
import json

import numpy as np
import pytest
import torch
from helpers import video
from torch.distributions import Normal, kl_divergence

import srvp.baselines.svg as svg_mod
from srvp import SRVP, load_official, preset, save_experiment
from srvp.baselines import SVG, SVGLoss, SVGOutput, svg_loss
from srvp.baselines.svg import skip_frame
from srvp.evaluate import Protocol, evaluate
from srvp.loss import Loss
from srvp.metrics import psnr
from srvp.model_registry import build_model, compute_loss
from srvp.train import train

SIZES = dict(model="svg", nf=4, g_dim=8, z_dim=3, rnn_size=8)


def tiny(**overrides):
    cfg = preset("smoke", **{**SIZES, **overrides})
    return SVG(cfg), cfg


def scrambled(model):
    """Weights N(0, 4 / fan-in), far larger than at initialisation, so that
    every input, state and noise draw visibly changes the output."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 2 / p[0].numel() ** 0.5)
    return model


def fixed_noise(monkeypatch, eps):
    """Make every z = mu + sigma eps[:rows], with the same eps at each step."""
    monkeypatch.setattr(svg_mod, "reparameterize",
                        lambda mu, logvar: mu + (0.5 * logvar).exp() * eps[:len(mu)])


# ------------------------------------------------------------------ shapes
def test_forward_shapes_and_range():
    model, cfg = tiny()
    x = video(cfg, nt=6, bsz=3)
    out = model(x)
    assert isinstance(out, SVGOutput)
    assert out.x_hat.shape == (5, 3, 1, 64, 64)
    for v in (out.z, out.mu_q, out.logvar_q, out.mu_p, out.logvar_p):
        assert v.shape == (5, 3, cfg.svg.z_dim)
    assert 0 <= out.x_hat.min() and out.x_hat.max() <= 1


def test_official_names_sizes_and_parameter_count():
    model = SVG(preset("svg"))
    sd = model.state_dict()
    for key in ("encoder.c1.main.0.bias", "encoder.c5.1.running_mean",
                "decoder.upc1.0.weight", "decoder.upc4.main.1.weight",
                "decoder.upc5.0.weight", "frame_predictor.embed.weight",
                "frame_predictor.lstm.1.weight_hh", "frame_predictor.output.0.bias",
                "posterior.mu_net.weight", "prior.logvar_net.bias"):
        assert key in sd, key
    assert len(model.frame_predictor.lstm) == 2
    assert len(model.prior.lstm) == len(model.posterior.lstm) == 1
    assert sd["frame_predictor.embed.weight"].shape == (256, 128 + 10)
    # closed form: encoder, decoder, predictor, posterior and prior (nf=64, nc=1)
    conv = lambda i, o, bn=True: i * o * 16 + o + 2 * o * bn  # noqa: E731
    cell = 4 * 256 * 512 + 8 * 256
    enc = conv(1, 64) + conv(64, 128) + conv(128, 256) + conv(256, 512) + \
        conv(512, 128)
    dec = conv(128, 512) + conv(1024, 256) + conv(512, 128) + conv(256, 64) + \
        conv(128, 1, bn=False)
    pred = 138 * 256 + 256 + 2 * cell + 256 * 128 + 128
    gauss = 128 * 256 + 256 + cell + 2 * (256 * 10 + 10)
    n = sum(p.numel() for p in model.parameters())
    assert n == enc + dec + pred + 2 * gauss == 12_614_057


def test_official_initialisation():
    model, _ = tiny(g_dim=64, rnn_size=64)
    lin = model.frame_predictor.embed
    assert abs(lin.weight.std().item() - 0.02) < 0.004 and not lin.bias.any()
    bn = model.encoder.c1.main[1]
    assert abs(bn.weight.mean().item() - 1) < 0.02 and not bn.bias.any()
    cell = model.prior.lstm[0].weight_ih  # PyTorch default: U(-1/8, 1/8)
    assert cell.abs().max() <= 1 / 8 and cell.std() > 0.05


def test_config_errors():
    with pytest.raises(ValueError, match="model='svg'"):
        SVG(preset("smoke"))
    with pytest.raises(ValueError, match="second-to-last"):
        tiny(nt_cond=1, nt_inf=1)
    with pytest.raises(ValueError, match="DCGAN"):
        tiny(archi="vgg")
    with pytest.raises(ValueError, match="model='svp': choose one of"):
        build_model(preset("smoke", model="svp"))  # the one model registry


# ------------------------------------------- official training behaviour
def _official_forward(model, x, n_past, eps):
    """The official ``train`` loop: frame by frame, stateful LSTM steps."""
    hq, hp, hg = (net.init_hidden(x.shape[1], x) for net in
                  (model.posterior, model.prior, model.frame_predictor))
    frames, kls = [], []
    for i in range(1, len(x)):
        h, feats = model.encoder(x[i - 1])
        if i < n_past:
            skip = feats
        (mu, logvar), hq = model.posterior(model.encoder(x[i])[0], hq)
        (mu_p, logvar_p), hp = model.prior(h, hp)
        z = mu + (0.5 * logvar).exp() * eps
        g, hg = model.frame_predictor(torch.cat([h, z], 1), hg)
        frames.append(model.decoder(g, skip))
        kls.append(svg_mod.kl_gaussians(mu, logvar, mu_p, logvar_p))
    return torch.stack(frames), torch.stack(kls)


@pytest.mark.parametrize("n_past", [2, 4])
def test_forward_is_the_official_loop(monkeypatch, n_past):
    model, cfg = tiny(nt_cond=n_past)
    scrambled(model)
    x = video(cfg, nt=6, bsz=3)
    eps = torch.randn(3, cfg.svg.z_dim)
    fixed_noise(monkeypatch, eps)
    out = model(x)
    ref_x, ref_kl = _official_forward(model, x, n_past, eps)
    torch.testing.assert_close(out.x_hat, ref_x, atol=1e-5, rtol=1e-4)
    kl = svg_mod.kl_gaussians(out.mu_q, out.logvar_q, out.mu_p, out.logvar_p)
    torch.testing.assert_close(kl, ref_kl, atol=1e-5, rtol=1e-4)


def test_skip_connections_follow_the_official_code():
    assert [skip_frame(t, 5) for t in range(1, 9)] == [0, 1, 2, 3, 3, 3, 3, 3]
    model, cfg = tiny(nt_cond=3)
    x = video(cfg, nt=6, bsz=2)
    seen = []
    model.decoder.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    model(x)
    feats = model.encode(x)[1]
    for t, skips in enumerate(seen, start=1):
        for level, s in enumerate(skips):
            torch.testing.assert_close(s, feats[level][min(t - 1, 1)])


def test_teacher_forcing_in_training_free_running_in_prediction():
    model, cfg = tiny(nt_cond=2)
    scrambled(model)
    x = video(cfg, nt=6, bsz=2)
    x2 = x.clone()
    x2[3] = torch.rand_like(x2[3])  # a future frame
    outs = []
    for clip in (x, x2):
        torch.manual_seed(1)
        outs.append(model(clip).x_hat)
    # x_hat[j] predicts frame j + 1: frames 1 and 2 do not see x_3, 3 and 4 do
    torch.testing.assert_close(outs[0][:2], outs[1][:2])
    assert not torch.allclose(outs[0][2], outs[1][2])
    preds = []
    for clip in (x, x2):
        torch.manual_seed(1)
        preds.append(model.predict(clip[:2], 4, n_samples=2))
    torch.testing.assert_close(preds[0], preds[1])
    assert model.training  # predict restores the mode


def test_prediction_feeds_back_its_own_frames():
    model, cfg = tiny(nt_cond=3)
    x_cond = video(cfg, nt=3, bsz=2)
    inputs = []
    model.encoder.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    pred = model.predict(x_cond, 4, n_samples=3)
    assert len(inputs) == 1 + 3  # conditioning frames once, then frames 1..3
    torch.testing.assert_close(inputs[0], x_cond.flatten(0, 1))
    for k, frame in enumerate(inputs[1:]):
        torch.testing.assert_close(frame, pred[:, k].flatten(0, 1))  # sample-major


def _official_generate(model, x_cond, nt_pred, eps):
    """One sample of the official ``generate_svg_lp.py`` loop."""
    n_past = len(x_cond)
    hq, hp, hg = (net.init_hidden(x_cond.shape[1], x_cond) for net in
                  (model.posterior, model.prior, model.frame_predictor))
    x_in, frames = x_cond[0], []
    for i in range(1, n_past + nt_pred):
        h, feats = model.encoder(x_in)
        if i < n_past:
            skip = feats
            (mu, logvar), hq = model.posterior(model.encoder(x_cond[i])[0], hq)
            _, hp = model.prior(h, hp)
            z = mu + (0.5 * logvar).exp() * eps
            _, hg = model.frame_predictor(torch.cat([h, z], 1), hg)
            x_in = x_cond[i]
        else:
            (mu, logvar), hp = model.prior(h, hp)
            z = mu + (0.5 * logvar).exp() * eps
            g, hg = model.frame_predictor(torch.cat([h, z], 1), hg)
            x_in = model.decoder(g, skip)
            frames.append(x_in)
    return torch.stack(frames)


@pytest.mark.parametrize("n_cond", [2, 4])
def test_vectorised_prediction_is_the_official_per_sample_loop(monkeypatch, n_cond):
    model, cfg = tiny()
    scrambled(model)
    x_cond = video(cfg, nt=n_cond, bsz=2)
    n, bsz = 3, 2
    eps = torch.randn(n * bsz, cfg.svg.z_dim)
    fixed_noise(monkeypatch, eps)
    pred = model.predict(x_cond, 4, n_samples=n)
    model.eval()
    with torch.no_grad():
        for s in range(n):
            ref = _official_generate(model, x_cond, 4, eps[s * bsz:(s + 1) * bsz])
            torch.testing.assert_close(pred[s], ref, atol=1e-5, rtol=1e-4)


# -------------------------------------------------------------- prediction
def test_predict_shapes_chunks_and_diversity():
    model, cfg = tiny()
    scrambled(model)
    x_cond = video(cfg, nt=3, bsz=2)
    calls = []
    model.encoder.register_forward_hook(lambda m, a, o: calls.append(len(a[0])))
    pred = model.predict(x_cond, 4, n_samples=5, chunk_size=4)  # chunks 2, 2, 1
    assert pred.shape == (5, 4, 2, 1, 64, 64)
    assert 0 <= pred.min() and pred.max() <= 1
    assert calls == [6] + [4] * 3 + [4] * 3 + [2] * 3  # conditioning encoded once
    assert not torch.allclose(pred[0], pred[1])
    assert model.predict(x_cond, 1).shape == (1, 1, 2, 1, 64, 64)


def test_bad_prediction_arguments_raise():
    model, cfg = tiny()
    x_cond = video(cfg, nt=2, bsz=2)
    with pytest.raises(ValueError, match="continuous time"):
        model.predict(x_cond, 3, n_euler_steps=2)
    with pytest.raises(ValueError, match="between frames"):
        model.predict(x_cond, 3, intermediate=True)
    with pytest.raises(ValueError, match="at least 1"):
        model.predict(x_cond, 0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        model.predict(x_cond[:1], 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.predict(x_cond * 255, 3)
    assert model.predict(x_cond, 3, n_euler_steps=1).shape == (1, 3, 2, 1, 64, 64)


# -------------------------------------------------------------------- loss
def test_loss_terms_against_closed_forms():
    torch.manual_seed(0)
    nt, bsz, nz = 4, 3, 5
    x = torch.rand(nt + 1, bsz, 1, 64, 64)
    params = [torch.randn(nt, bsz, nz) for _ in range(4)]
    out = SVGOutput(torch.rand(nt, bsz, 1, 64, 64), params[0], *params)
    cfg = preset("svg")
    terms = svg_loss(out, x, cfg)
    mse = sum(torch.nn.functional.mse_loss(out.x_hat[t], x[t + 1]) for t in range(nt))
    q = Normal(params[0], (0.5 * params[1]).exp())
    p = Normal(params[2], (0.5 * params[3]).exp())
    kl = kl_divergence(q, p).sum() / bsz
    torch.testing.assert_close(terms.mse, mse)
    torch.testing.assert_close(terms.kl_z, kl)
    torch.testing.assert_close(terms.loss, mse + 1e-4 * kl)
    assert isinstance(terms, SVGLoss)
    with pytest.raises(ValueError, match="x\\[1:\\]"):
        svg_loss(out, x[1:], cfg)


def test_kl_is_zero_for_equal_gaussians_and_positive_otherwise():
    mu, logvar = torch.randn(2, 7), torch.randn(2, 7)
    assert svg_mod.kl_gaussians(mu, logvar, mu, logvar).abs().max() < 1e-6
    assert (svg_mod.kl_gaussians(mu, logvar, mu + 1, logvar) > 0).all()


def test_adam_steps_lower_the_loss_on_a_fixed_batch():
    model, cfg = tiny()
    x = video(cfg, nt=6, bsz=4)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr * 5, betas=(0.9, 0.999))

    def loss():
        torch.manual_seed(3)
        return svg_loss(model(x), x, cfg).loss

    first = loss().item()
    for _ in range(5):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first


# --------------------------------------------------- the shared harness
def test_factory_builds_each_model_and_its_loss():
    model, cfg = tiny()
    x = video(cfg, nt=6, bsz=2)
    assert type(build_model(cfg)) is SVG
    assert isinstance(compute_loss(model(x), x, cfg), SVGLoss)
    srvp_cfg = preset("smoke")
    srvp_model = build_model(srvp_cfg)
    assert type(srvp_model) is SRVP
    assert isinstance(compute_loss(srvp_model(x), x, srvp_cfg), Loss)


def test_checkpoint_round_trip(tmp_path):
    model, cfg = tiny()
    save_experiment(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "svg"
    loaded, loaded_cfg = load_official(tmp_path)
    assert type(loaded) is SVG and loaded_cfg == cfg and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


class _Replay(torch.nn.Module):
    """A stand-in model that returns recorded samples, in order."""

    def __init__(self, recorded):
        super().__init__()
        self.recorded, self.p = list(recorded), torch.nn.Parameter(torch.zeros(1))

    def predict(self, x_cond, nt_pred, n_samples, n_euler_steps=None):
        out = self.recorded.pop(0)
        assert out.shape[:3] == (n_samples, nt_pred, x_cond.shape[1])
        return out


def test_shared_evaluation_is_model_agnostic(monkeypatch):
    model, cfg = tiny()
    batches = [video(cfg, nt=6, bsz=2), video(cfg, nt=6, bsz=3)]
    recorded, predict = [], model.predict

    def recording(*args, **kwargs):
        recorded.append(predict(*args, **kwargs))
        return recorded[-1]

    monkeypatch.setattr(model, "predict", recording)
    kw = dict(protocol=Protocol(2, 4, n_samples=5), chunk_samples=2, progress=False)
    res = evaluate(model, batches, **kw)
    assert len(recorded) == 6  # 3 chunks per batch
    ref = evaluate(_Replay(recorded), batches, **kw)
    for name in ("psnr", "ssim"):
        np.testing.assert_array_equal(res["metrics"][name]["per_video"],
                                      ref["metrics"][name]["per_video"])
    for key, value in res["samples"].items():
        np.testing.assert_array_equal(value, ref["samples"][key])
    samples = torch.cat(recorded[:3])  # (5, 4, 2, ...) of the first batch
    best = torch.stack([psnr(s, batches[0][2:]).mean(0) for s in samples]).max(0)
    np.testing.assert_allclose(res["metrics"]["psnr"]["per_video"][:2],
                               best.values.double().numpy(), rtol=1e-6)


def test_trainer_trains_and_reloads_svg(tmp_path, tiny_mnist_dir):
    _, cfg = tiny(lr_scheduling_burnin=4, lr_scheduling_n_iter=0, val_interval=2)
    trainer = train(cfg, tmp_path, tiny_mnist_dir, progress=False, log_interval=1)
    assert type(trainer.model) is SVG and trainer.step == 4
    records = [json.loads(ln) for ln in
               (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"loss", "mse", "kl_z"} <= set(records[0])
    assert [r["step"] for r in records if "val_psnr" in r] == [2, 4]
    loaded, _ = load_official(tmp_path)
    assert type(loaded) is SVG


def test_svg_resume_gives_the_uninterrupted_result(tmp_path, tiny_mnist_dir):
    """The trainer's exact resume holds for SVG runs too."""
    _, cfg = tiny(lr_scheduling_burnin=4, lr_scheduling_n_iter=2, val_interval=3)
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg, full, tiny_mnist_dir, progress=False)
    assert train(cfg, part, tiny_mnist_dir, progress=False, max_steps=3).step == 3
    train(cfg, part, tiny_mnist_dir, resume=True, progress=False)
    a = torch.load(full / "model.pt", weights_only=True)
    b = torch.load(part / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
