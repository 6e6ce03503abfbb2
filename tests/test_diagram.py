"""srvp.diagram: the pictures of the model follow the modules and the config
they are drawn from, and stay readable."""
import html
from pathlib import Path

import matplotlib
import pytest

from srvp import SRVP, preset
from srvp.diagram import block_shapes, graphical_model, network_diagram

matplotlib.use("Agg")


def _texts(fig):
    """The texts a figure shows: titles, labels and annotations (the tick labels
    of its hidden axes are not drawn)."""
    found = [*fig.texts]
    for ax in fig.axes:
        found += [*ax.texts, ax.title, ax._left_title, ax._right_title]
    return [t for t in found if t.get_text().strip()]


@pytest.mark.parametrize("name", ["cpu", "kth", "human"])
def test_block_shapes_follow_the_config(name):
    cfg = preset(name)
    shapes = block_shapes(SRVP(cfg), cfg)
    assert shapes["encoder"]["in"] == f"(T·B, {cfg.nc}, 64, 64)"
    assert shapes["encoder"]["out"] == f"(T·B, {cfg.nhx})"
    q_y_params = sum(p.numel() for p in SRVP(cfg).q_y.parameters())
    assert shapes["q_y"] == {"in": f"(B, {cfg.nt_inf * cfg.nhx})",
                             "out": f"(B, {2 * cfg.ny})", "params": q_y_params}
    assert shapes["dynamics"]["in"] == f"(B, {cfg.ny + cfg.nz})"
    assert shapes["dynamics"]["out"] == f"(B, {cfg.ny})"
    assert shapes["decoder"]["in"] == f"(T·B, {cfg.nh_inf + cfg.ny})"
    assert shapes["content"]["out"] == f"(B, {cfg.nh_inf})"
    total = sum(s["params"] for s in shapes.values())
    assert total == sum(p.numel() for p in SRVP(cfg).parameters())  # every network


def test_without_content_the_diagram_has_no_content_block():
    cfg = preset("cpu", content=False)
    model = SRVP(cfg)
    shapes = block_shapes(model, cfg)
    assert "content" not in shapes and shapes["decoder"]["in"] == f"(T·B, {cfg.ny})"
    texts = " ".join(t.get_text() for t in _texts(network_diagram(model, cfg)))
    assert "content w" not in texts and f"(T·B, {cfg.ny})" in texts


def test_the_figures_show_the_shapes_and_stay_readable():
    cfg = preset("cpu")
    model = SRVP(cfg)
    for fig in (network_diagram(model, cfg), graphical_model(cfg)):
        texts = _texts(fig)
        assert texts and min(t.get_fontsize() for t in texts) >= 9  # points
    joined = " ".join(t.get_text() for t in _texts(network_diagram(model, cfg)))
    assert f"{sum(p.numel() for p in model.parameters()):,d} parameters" in joined
    assert f"(B, {cfg.nt_inf * cfg.nhx}) → (B, {2 * cfg.ny})" in joined
    graph = " ".join(t.get_text() for t in _texts(graphical_model(cfg, n_frames=4)))
    assert "$z_4$" in graph and "$z_1$" not in graph  # z starts at the second frame
    assert f"the first {min(cfg.nt_inf, 4)} frames" in graph


def test_the_introduction_figure_is_what_the_code_draws():
    """book/_static/figures/graphical_model.svg (scripts/make_figures.py) holds
    every text of graphical_model(preset("cpu")): redraw it after a change."""
    svg = (Path(__file__).resolve().parents[1] / "book" / "_static" / "figures"
           / "graphical_model.svg").read_text()
    for text in _texts(graphical_model(preset("cpu"))):
        assert html.escape(text.get_text(), quote=False) in svg, text.get_text()
