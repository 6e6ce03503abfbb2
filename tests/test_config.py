"""Config names: validation settings named as such, SVG settings grouped apart,
official flag names kept for reading and writing official configs."""
import json

import pytest

from srvp import Config, preset
from srvp.cli.train import parse_overrides
from srvp.config import OFFICIAL_NAMES, PRESETS, SVGSettings


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_official_names_round_trip(name):
    cfg = PRESETS[name]
    official = cfg.to_official()
    assert "svg" not in official and "g_dim" in official  # SVG flags flat
    for flag, field in OFFICIAL_NAMES.items():
        assert official[flag] == getattr(cfg, field) and field not in official
    assert Config.from_official(official) == cfg
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_validation_fields_and_their_official_names():
    cfg = preset("cpu", n_iter_test=7, batch_size_test=3)  # official flags accepted
    assert (cfg.val_batches, cfg.val_batch_size) == (7, 3)
    assert cfg.n_iter_test == 7  # and readable under the official name
    assert parse_overrides(["n_samples_test=9"]) == {"val_samples": 9}
    longer = preset("cpu").replace(**parse_overrides(["val_seq_len=20"]))
    assert longer.val_seq_len == 20
    with pytest.raises(AttributeError, match="no attribute 'val_bogus'"):
        _ = cfg.val_bogus


def test_svg_settings_are_grouped_apart():
    cfg = preset("svg_cpu")
    assert isinstance(cfg.svg, SVGSettings) and cfg.svg.g_dim == 128
    srvp_fields = set(preset("cpu").to_dict())
    assert not srvp_fields & {"g_dim", "z_dim", "rnn_size", "beta"}  # not flat
    small = cfg.replace(g_dim=64, beta=1e-3)  # flat names go to the group
    assert small.svg == SVGSettings(g_dim=64, beta=1e-3)
    assert parse_overrides(["rnn_size=32"]) == {"rnn_size": 32}
    assert cfg.replace(**parse_overrides(["rnn_size=32"])).svg.rnn_size == 32
    with pytest.raises(ValueError, match="z_dim=0: the SVG layer size z_dim must"):
        cfg.replace(z_dim=0)
    with pytest.raises(TypeError, match="g_dim"):
        cfg.replace(g_dim="big")
    with pytest.raises(ValueError, match="unknown config field"):
        cfg.replace(g_dimm=3)
