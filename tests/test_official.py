"""Compatibility with the official checkpoints.

Keys, shapes and parameter counts come from a spec file produced by the official
implementation, shipped with the tests (``tests/fixtures/official_state_dicts.json``,
a copy of ``../shared/spec/official_state_dicts.json``); outputs are compared, part
by part, with the independent copy of the official networks in the ``srvp-fd``
package (a test-only dependency).
"""
import json
import warnings
from pathlib import Path

import pytest
import torch
from helpers import video

from srvp import SRVP, Config, load_official, preset, save_experiment

# the spec ships with the tests: a copy of ../shared/spec/official_state_dicts.json
SPEC = Path(__file__).resolve().parent / "fixtures" / "official_state_dicts.json"
OFFICIAL = ["smmnist", "kth", "human", "bair"]


@pytest.fixture(scope="module")
def spec():
    return json.loads(SPEC.read_text())


def test_spec_covers_every_official_preset(spec):
    assert sorted(spec) == sorted(OFFICIAL)
    for name in OFFICIAL:
        assert {"config", "n_parameters", "state_dict"} <= set(spec[name]), name
        assert spec[name]["n_parameters"] > 0 and spec[name]["state_dict"], name


def test_spec_fixture_equals_the_shared_spec(shared_dir):
    """The fixture copy cannot drift from the spec produced by the official code."""
    source = shared_dir / "spec" / "official_state_dicts.json"
    if not source.is_file():
        pytest.skip(f"{source} not found: nothing to compare the fixture with")
    assert json.loads(source.read_text()) == json.loads(SPEC.read_text()), (
        f"{SPEC} differs from {source}: copy the latter over the former")


@pytest.mark.parametrize("name", OFFICIAL)
def test_state_dict_matches_spec(spec, name):
    model = SRVP(preset(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == spec[name]["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == spec[name]["n_parameters"]
    for key, value in spec[name]["config"].items():
        assert getattr(preset(name), key) == value, key


def _oracle(cfg):
    srvp_model = pytest.importorskip("srvp_fd.srvp_model")
    return srvp_model.StochasticLatentResidualVideoPredictor(
        cfg.nx, cfg.nc, cfg.nf, cfg.nhx, cfg.ny, cfg.nz, cfg.skipco, cfg.nt_inf,
        cfg.nh_inf, cfg.nlayers_inf, cfg.nh_res, cfg.nlayers_res, cfg.archi)


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)


@pytest.mark.parametrize("name", OFFICIAL)
def test_same_function_as_independent_copy(name):
    """A state dict of the official layout loads strictly into both models,
    which then compute the same encoder, decoder and inference networks."""
    cfg = preset(name, nf=8)  # the official code at a smaller width, for speed
    ref = _oracle(cfg)
    _randomise_bn(ref)
    ours = SRVP(cfg)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval(), ref.eval()
    x = video(cfg, nt=cfg.nt_inf + 2)
    with torch.no_grad():
        hx, skips = ours.encode(x)
        hx_ref, skips_ref = ref.encode(x)
        torch.testing.assert_close(hx, hx_ref)
        for s, s_ref in zip(skips or [], skips_ref or []):
            torch.testing.assert_close(s, s_ref)
        w = ours.infer_w(hx)
        torch.testing.assert_close(w, ref.infer_w(hx))
        flat = hx[: cfg.nt_inf].transpose(0, 1).reshape(x.shape[1], -1)
        torch.testing.assert_close(ours.q_y(flat), ref.q_y(flat))
        torch.testing.assert_close(ours.inf_z(hx)[0], ref.inf_z(hx)[0])
        y = torch.randn(3, x.shape[1], cfg.ny)
        yz = torch.randn(x.shape[1], cfg.ny + cfg.nz)
        torch.testing.assert_close(ours.p_z(y), ref.p_z(y))
        torch.testing.assert_close(ours.dynamics(yz), ref.dynamics(yz))
        dec_in = torch.cat([w.expand(3, *w.shape), y], -1).flatten(0, 1)
        dec_skips = None if skips is None else \
            [s.repeat(3, 1, 1, 1) for s in skips]
        torch.testing.assert_close(ours.decode(w, y, skips).flatten(0, 1),
                                   ref.decoder(dec_in, dec_skips))


def _official_config(cfg):
    """An official-style config.json: the training flags of the paper's run."""
    keys = ["nx", "nc", "nf", "nhx", "ny", "nz", "skipco", "nt_inf", "nh_inf",
            "nlayers_inf", "nh_res", "nlayers_res", "archi", "dataset", "seq_len",
            "nt_cond", "n_euler_steps", "obs_scale", "beta_z", "res_gain"]
    d = {k: getattr(cfg, k) for k in keys}
    d.update(save_path="/somewhere", device=[0], torch_amp=False, local_rank=0,
             data_dir="/data", seed=123, seq_len_test=None, n_workers=4)
    return d


@pytest.mark.parametrize("name", OFFICIAL)
def test_load_official_folder(tmp_path, name):
    cfg = preset(name, nf=8)
    ref = SRVP(cfg)
    (tmp_path / "config.json").write_text(json.dumps(_official_config(cfg)))
    torch.save(ref.state_dict(), tmp_path / "model.pt")
    model, loaded = load_official(tmp_path)
    assert loaded.archi == cfg.archi and loaded.nf == 8 and not model.training
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_official_ddp_prefix_is_stripped(tmp_path):
    cfg = preset("smoke")
    ref = SRVP(cfg)
    save_experiment(ref, tmp_path)
    sd = {"module." + k: v for k, v in ref.state_dict().items()}
    torch.save(sd, tmp_path / "model.pt")
    model, loaded = load_official(tmp_path)
    assert loaded == cfg


def test_load_official_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_official(tmp_path)
    cfg = preset("smoke")
    d = _official_config(cfg)
    del d["ny"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="ny"):
        load_official(tmp_path)
    d = _official_config(cfg) | {"archi": "resnet"}
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="archi"):
        load_official(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(_official_config(cfg)))
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_official(tmp_path)
    wrong = SRVP(cfg.replace(ny=5)).state_dict()
    torch.save(wrong, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="does not match"):
        load_official(tmp_path)


def test_checkpoints_are_read_as_data(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))
    cfg = preset("smoke")
    save_experiment(SRVP(cfg), tmp_path)
    torch.save({"weights": Evil()}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="not a readable"):
        load_official(tmp_path)


def test_unknown_official_field_warns(tmp_path):
    d = _official_config(preset("smoke")) | {"brand_new_flag": 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Config.from_official(d)
    assert any("brand_new_flag" in str(w.message) for w in caught)
