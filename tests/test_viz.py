"""Figures and animations: they build, have the layout asked for, and save."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
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


def shown_text_px(fig):
    """The smallest text height (pixels) of ``fig`` on a book page: saved as the
    page's PNG (tight box), then scaled down to the output column when wider."""
    import io

    from matplotlib.text import Text
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    width = Image.open(buffer).size[0]
    scale = min(1.0, viz.PAGE_PX / width) * fig.get_dpi() / 72
    sizes = [t.get_fontsize() * scale for t in fig.findobj(Text)
             if t.get_text() and t.get_visible()]
    return min(sizes)


def _log(tmp_path):
    from srvp.run_folder import append_log

    for step in range(0, 3000, 500):
        append_log(tmp_path, {"step": step, "nll": 1e4 / (step + 1), "kl_y": 5.0,
                              "kl_z": 3.0, "l2_res": 1.0, "time": step})
        append_log(tmp_path, {"step": step, "val_psnr": 12.0 + step / 1e3})
    return tmp_path


FIGURES = {
    "frame grid, 25 frames": lambda tmp: viz.frame_grid(
        {"ground truth": torch.rand(25, 1, 64, 64),
         "best of 100": torch.rand(20, 1, 64, 64)}, nt_cond=5),
    "time grid, paper layout": lambda tmp: viz.time_grid(
        {"trained 1, tested 1": (torch.rand(11, 1, 64, 64), 1),
         "trained 1/2, tested 1/4": (torch.rand(41, 1, 64, 64), 4)}, k_max=4),
    "metric curves": lambda tmp: viz.metric_curves(
        {"protocol": {"nt_cond": 5},
         "metrics": {m: {"per_frame": np.random.rand(8, 20)}
                     for m in ("psnr", "ssim", "lpips")}}),
    "latent trajectories": lambda tmp: viz.latent_trajectory(
        torch.randn(7, 3, 20), labels=["a", "b", "c"]),
    "training log": lambda tmp: viz.plot_log(_log(tmp)),
    "animation": lambda tmp: viz._animation(
        {k: torch.rand(3, 1, 64, 64) for k in "abcd"}, 200)._fig,
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_label_is_readable_on_the_page(name, tmp_path):
    """No text of a figure shows under 9 pixels on the page (issue: grid labels
    of 5-6 px when a 25-frame grid was scaled down to the column)."""
    import matplotlib.pyplot as plt

    fig = FIGURES[name](tmp_path)
    try:
        assert shown_text_px(fig) >= 9
    finally:
        plt.close(fig)


def test_fit_page_leaves_large_text_alone():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    ax.set_title("big", fontsize=20)
    ax.set_xlabel("small", fontsize=4)
    viz.fit_page(fig)
    assert ax.title.get_fontsize() == 20
    assert ax.xaxis.label.get_fontsize() * 100 / 72 == pytest.approx(viz.MIN_TEXT_PX)
    plt.close(fig)
