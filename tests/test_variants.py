"""The ablation variants of the model: direct dynamics and no content variable
(book ch. 8). The defaults stay the paper's model."""
import json

import pytest
import torch
from helpers import tiny, video

from srvp import SRVP, Config, elbo_loss, preset
from srvp.cli.train import parse_overrides
from srvp.run_folder import load_official
from srvp.train import train


def test_the_defaults_are_the_paper_model():
    cfg = preset("smmnist")
    assert (cfg.dynamics, cfg.content) == ("residual", True)
    torch.manual_seed(0)
    default = SRVP(cfg).state_dict()
    torch.manual_seed(0)
    explicit = SRVP(cfg.replace(dynamics="residual", content=True)).state_dict()
    assert default.keys() == explicit.keys()
    assert all(torch.equal(default[k], explicit[k]) for k in default)


def test_without_content_no_content_network_and_an_empty_w():
    with_w, cfg = tiny()
    model, cfg_now = tiny(content=False)
    names = set(model.state_dict())
    assert not any(n.startswith(("w_proj", "w_inf")) for n in names)
    assert names < set(with_w.state_dict())
    x = video(cfg_now, nt=6)
    out = model(x)
    assert out.w.shape == (2, 0)
    assert out.x_hat.shape == x.shape
    first = next(m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)
                 or isinstance(m, torch.nn.ConvTranspose2d))
    # the decoder's first layer takes y alone
    assert first.weight.shape[0] == cfg_now.ny or first.weight.shape[1] == cfg_now.ny
    loss = elbo_loss(out, x, cfg_now).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_without_content_the_swap_ignores_the_content_video():
    model, cfg = tiny(content=False)
    a, b, c = (video(cfg, nt=6) for _ in range(3))
    torch.manual_seed(3)
    with_b, y_b = model.swap_content(a, b)
    torch.manual_seed(3)
    with_c, y_c = model.swap_content(a, c)
    torch.testing.assert_close(y_b, y_c)
    assert torch.equal(with_b, with_c)  # nothing of b or c reaches the frames
    full, _ = tiny()
    torch.manual_seed(3)
    swap_b = full.swap_content(a, b)[0]
    torch.manual_seed(3)
    assert not torch.equal(swap_b, full.swap_content(a, c)[0])  # w does


def test_direct_dynamics_take_the_network_output_as_the_state():
    model, cfg = tiny(dynamics="direct")
    y, z = torch.randn(3, cfg.ny), torch.randn(3, cfg.nz)
    y_next, change = model._residual_step(y, z, 1.0)
    torch.testing.assert_close(y_next, model.dynamics(torch.cat([y, z], 1)))
    torch.testing.assert_close(change, y_next - y)
    x = video(cfg, nt=6)
    out = model(x)
    # every state is f(previous state, its z); the penalised term is the change
    for t in range(len(x) - 1):
        torch.testing.assert_close(out.y[t + 1],
                                   model.dynamics(torch.cat([out.y[t], out.z[t]], 1)))
    torch.testing.assert_close(out.res, out.y[1:] - out.y[:-1])
    assert torch.isfinite(elbo_loss(out, x, cfg).loss)
    assert model.predict(x[:cfg.nt_cond], nt_pred=4, n_samples=2).shape == \
        (2, 4, 2, 1, 64, 64)


def test_direct_dynamics_refuse_another_time_step():
    """One rule, one line: direct dynamics take no K other than 1, in the
    config and in every method that takes K."""
    refusal = r"^n_euler_steps=\d: direct dynamics .* no Euler step to refine; " \
              r"use n_euler_steps=1, or dynamics=residual$"
    with pytest.raises(ValueError, match=refusal):
        preset("smoke", dynamics="direct", n_euler_steps=2)
    model, cfg = tiny(dynamics="direct")
    x = video(cfg, nt=cfg.nt_cond)
    for kw in (dict(n_euler_steps=2), dict(n_euler_steps_cond=4)):
        with pytest.raises(ValueError, match=refusal):
            model.predict(x, nt_pred=3, **kw)
    with pytest.raises(ValueError, match=refusal):
        model(x, n_euler_steps=2)
    assert model.predict(x, nt_pred=3, n_euler_steps=1).shape[1] == 3
    with pytest.raises(ValueError, match="dynamics='gru'"):
        preset("smoke", dynamics="gru")


def test_variants_round_trip_through_config_json_and_the_command_line(tmp_path):
    cfg = preset("cpu", dynamics="direct", content=False)
    cfg.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == cfg
    assert json.loads((tmp_path / "config.json").read_text())["dynamics"] == "direct"
    assert parse_overrides(["dynamics=direct", "content=false"]) == \
        {"dynamics": "direct", "content": False}
    # an official config (no such fields) gives the paper's model
    official = preset("smmnist").to_official()
    del official["dynamics"], official["content"]
    back = Config.from_official(official)
    assert (back.dynamics, back.content) == ("residual", True)


@pytest.mark.parametrize("change", [dict(dynamics="direct"), dict(content=False)])
def test_a_variant_trains_and_loads_back(tmp_path, tiny_mnist_dir, change):
    cfg = preset("smoke", lr_scheduling_burnin=4, lr_scheduling_n_iter=2,
                 val_interval=6, **change)
    train(cfg, tmp_path, tiny_mnist_dir, progress=False)
    model, loaded = load_official(tmp_path)
    assert loaded == cfg
    assert set(model.state_dict()) == set(SRVP(cfg).state_dict())
