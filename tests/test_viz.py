"""Figures and animations: they build, have the layout asked for, and save."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from srvp import viz  # noqa: E402


def test_frame_grid_layout_and_colours():
    truth = torch.rand(6, 1, 64, 64)
    pred = (torch.rand(4, 1, 64, 64) * 255).to(torch.uint8)
    fig = viz.frame_grid({"truth": truth, "best": pred}, nt_cond=2)
    assert len(fig.axes) == 12
    first = fig.axes[0]
    green = matplotlib.colors.to_rgb("tab:green")
    assert first.spines["left"].get_edgecolor()[:3] == green
    pred_cell = fig.axes[6 + 2]  # row 2, column 3: first predicted frame
    assert pred_cell.images and pred_cell.spines["left"].get_edgecolor()[:3] == \
        matplotlib.colors.to_rgb("tab:red")
    assert not fig.axes[6].images  # the shorter row is aligned right


def test_animation_html_and_gif(tmp_path):
    videos = {"a": torch.rand(3, 1, 64, 64), "b": np.random.rand(3, 64, 64)}
    html = viz.animate(videos).data
    assert "<script" in html and "anim" in html
    viz.save_gif(videos, tmp_path / "a.gif")
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as gif:  # 1.6 x 1.9 inches per video
        dpi = viz.ANIMATION_DPI
        assert gif.size == (round(3.2 * dpi), round(1.9 * dpi))
    assert viz.ANIMATION_DPI >= 100
    assert (tmp_path / "a.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_metric_curves_and_latents():
    res = {"protocol": {"nt_cond": 5},
           "metrics": {"psnr": {"per_frame": np.random.rand(8, 10)},
                       "ssim": {"per_frame": np.random.rand(8, 10)}}}
    fig = viz.metric_curves(res)
    assert len(fig.axes) == 2
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == list(range(6, 16))
    fig = viz.latent_trajectory(torch.randn(7, 3, 20), labels=["a", "b", "c"])
    assert len(fig.axes[0].lines) == 6


def test_bad_video_shape():
    import pytest

    with pytest.raises(ValueError, match="expected a video"):
        viz.frame_grid({"x": np.zeros((2, 2))})


def test_time_grid_places_frames_at_their_times():
    coarse = torch.rand(3, 1, 64, 64)  # k = 1: times 0, 1, 2
    fine = torch.rand(9, 1, 64, 64)  # k = 4: times 0, 1/4, ..., 2
    fig = viz.time_grid({"truth": (coarse, 1), "fine": (fine, 4)}, k_max=4, t0=5)
    axes = np.array(fig.axes).reshape(2, 9)
    assert [bool(ax.images) for ax in axes[0]] == [True] + ([False] * 3 + [True]) * 2
    assert all(ax.images for ax in axes[1])
    colour = lambda ax: ax.spines["left"].get_edgecolor()[:3]  # noqa: E731
    rgb = matplotlib.colors.to_rgb
    assert colour(axes[1, 0]) == rgb("tab:green")
    assert colour(axes[1, 4]) == rgb("tab:red")  # the frame time t0 + 1
    assert colour(axes[1, 2]) == rgb(viz.BETWEEN_COLOR)
    assert axes[0, 4].get_title() == "t=6"
    try:
        viz.time_grid({"x": (coarse, 3)}, k_max=4)
    except ValueError as err:
        assert "does not divide" in str(err)
    else:
        raise AssertionError("k=3 with k_max=4 was accepted")
