"""Pictures of videos and results, with matplotlib only (book ch. 1, 5-7).

Videos are (T, C, H, W) or (T, H, W) arrays or tensors, float in [0, 1] or uint8.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

COND_COLOR, PRED_COLOR = "tab:green", "tab:red"
BETWEEN_COLOR = "tab:orange"  # frames between two frame times (book ch. 6)

ANIMATION_DPI = 110  # frames of 64 pixels stay sharp on the web page
#: Width (pixels) of a cell's output column on the book's pages in a 1280-pixel
#: window: a wider figure is scaled down to it, and so is its text
PAGE_PX = 676
#: The smallest text height (pixels) a figure of the book shows on the page
MIN_TEXT_PX = 9.5


def fit_page(fig, min_px: float = MIN_TEXT_PX, page_px: int = PAGE_PX):
    """Enlarge each text of ``fig`` (titles, labels, ticks, legends) that would
    show smaller than ``min_px`` pixels once the figure, saved with a tight box as
    in a notebook, is scaled to ``page_px`` pixels wide as on the book's pages;
    returns ``fig``. Text that sticks out of the figure widens the saved image,
    so the sizes are settled again after each change (a few passes at most)."""
    from matplotlib.text import Text

    dpi = fig.get_dpi()
    for _ in range(4):
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        width = max(fig.get_figwidth(), box.width) * dpi
        smallest = min_px / (dpi / 72 * min(1.0, page_px / width))
        small = [t for t in fig.findobj(Text)
                 if t.get_text() and t.get_fontsize() < smallest - 1e-6]
        ticks = [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                 if axis.get_major_ticks()
                 and axis.get_major_ticks()[0].label1.get_fontsize() < smallest - 1e-6]
        if not small and not ticks:
            break
        for text in small:
            text.set_fontsize(smallest)
        for axis in ticks:  # ticks made at draw time take the axis's size
            axis.set_tick_params(labelsize=smallest)
    return fig


def _frames(video) -> np.ndarray:
    """(T, H, W) or (T, H, W, 3) float array in [0, 1]."""
    v = video.detach().cpu().numpy() if hasattr(video, "detach") else np.asarray(video)
    v = v.astype(np.float32) / 255 if v.dtype == np.uint8 else v.astype(np.float32)
    if v.ndim == 4:
        v = v[:, 0] if v.shape[1] == 1 else v.transpose(0, 2, 3, 1)
    if v.ndim not in (3, 4):
        raise ValueError(f"expected a video (T, C, H, W) or (T, H, W), got {v.shape}")
    return np.clip(v, 0, 1)


def _show(ax, frame, color=None) -> None:
    ax.imshow(frame, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_edgecolor(color)
            spine.set_linewidth(2.5)


def _blank(ax) -> None:
    """An empty cell: no frame, no ticks, but the axes stay for labels."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def frame_grid(rows: Dict[str, object], nt_cond: int = 0, every: int = 1,
               scale: float = 0.9, start: Optional[Sequence[int]] = None):
    """One row per video, in the paper's layout.

    Parameters
    ----------
    rows : label -> video. A row's frames are aligned at the right when it is
        shorter than the longest row (a prediction beside its ground truth).
    nt_cond : frames of the longest row that are conditioning (framed green);
        later frames are framed red.
    every : show one frame in ``every``.
    start : per-row index of the first column it occupies (overrides alignment).
    """
    import matplotlib.pyplot as plt

    videos = {k: _frames(v) for k, v in rows.items()}
    nt = max(len(v) for v in videos.values())
    cols = list(range(0, nt, every))
    fig, axes = plt.subplots(len(videos), len(cols), squeeze=False,
                             figsize=(scale * len(cols), scale * len(videos) + 0.3))
    for r, (label, v) in enumerate(videos.items()):
        offset = (nt - len(v)) if start is None else start[r]
        for c, t in enumerate(cols):
            ax = axes[r, c]
            if 0 <= t - offset < len(v):
                _show(ax, v[t - offset], COND_COLOR if t < nt_cond else PRED_COLOR)
            else:  # an empty cell keeps its axes so that the row label shows
                _blank(ax)
            if r == 0 and (len(cols) <= 12 or c == 0 or (t + 1) % 5 == 0):
                ax.set_title(f"t={t + 1}", fontsize=7)  # a crowded row: every 5th
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.15)
    return fit_page(fig)


def time_grid(rows: Dict[str, object], k_max: int, t0: int = 0,
               scale: float = 0.55):
    """Videos predicted with different Euler steps, each frame at its time.

    Parameters
    ----------
    rows : label -> (video, k): a video whose frame ``i`` lies at the time
        ``t0 + i / k`` (its first frame at ``t0``, the last observed frame).
    k_max : the finest ``k``, which sets the columns (``k_max`` per frame
        interval; every ``k`` must divide it).
    t0 : the time of the first frame, for the column titles.

    The first frame of a row (observed) is framed green, the frames at the
    frame times red, and those in between orange, as in the paper's figures.
    """
    import matplotlib.pyplot as plt

    videos = {label: (_frames(v), k) for label, (v, k) in rows.items()}
    for label, (_, k) in videos.items():
        if k_max % k:
            raise ValueError(f"row {label!r}: k={k} does not divide k_max={k_max}")
    n_cols = max((len(v) - 1) * (k_max // k) + 1 for v, k in videos.values())
    fig, axes = plt.subplots(len(videos), n_cols, squeeze=False,
                             figsize=(scale * n_cols + 1.2, scale * len(videos) + 0.3))
    for r, (label, (v, k)) in enumerate(videos.items()):
        step = k_max // k
        for c in range(n_cols):
            ax = axes[r, c]
            i = c // step
            if c % step == 0 and i < len(v):
                color = COND_COLOR if i == 0 else \
                    (PRED_COLOR if i % k == 0 else BETWEEN_COLOR)
                _show(ax, v[i], color)
            else:
                _blank(ax)
            if r == 0 and c % k_max == 0:
                ax.set_title(f"t={t0 + c // k_max}", fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.06, hspace=0.06, left=1.1 / (scale * n_cols + 1.2),
                        right=0.99, top=1 - 0.25 / (scale * len(videos) + 0.3),
                        bottom=0.01)
    return fit_page(fig)


def _animation(videos: Dict[str, object], interval: int, dpi: int = ANIMATION_DPI):
    import matplotlib.pyplot as plt
    from matplotlib import animation

    frames = {k: _frames(v) for k, v in videos.items()}
    nt = max(len(v) for v in frames.values())
    fig, axes = plt.subplots(1, len(frames), squeeze=False,
                             figsize=(1.6 * len(frames), 1.9), dpi=dpi)
    images = []
    for ax, (label, v) in zip(axes[0], frames.items()):
        _show(ax, v[0])
        ax.set_title(label, fontsize=8)
        images.append(ax.images[0])
    fit_page(fig)

    def update(t):
        for im, v in zip(images, frames.values()):
            im.set_data(v[min(t, len(v) - 1)])
        return images

    anim = animation.FuncAnimation(fig, update, frames=nt, interval=interval, blit=True)
    plt.close(fig)
    return anim


def animate(videos: Dict[str, object], interval: int = 200,
            dpi: int = ANIMATION_DPI):
    """Side-by-side animation of a few videos, as embeddable HTML (jshtml) that
    plays on the web page too; ``dpi`` sets the frames' resolution."""
    from IPython.display import HTML

    anim = _animation(videos, interval, dpi)
    return HTML(anim.to_jshtml())


def save_gif(videos: Dict[str, object], path, interval: int = 200,
             dpi: int = ANIMATION_DPI) -> None:
    """Write the same animation as a GIF (for the README and static pages)."""
    from matplotlib.animation import PillowWriter

    writer = PillowWriter(fps=1000 / interval)
    _animation(videos, interval, dpi).save(str(path), writer=writer, dpi=dpi)


def metric_curves(results: Dict, metrics: Sequence[str] = ("psnr", "ssim", "lpips"),
                  label: str = "model", axes=None, nt_cond: Optional[int] = None):
    """Per predicted frame: the mean score of the best samples with a 95% band.

    ``results`` comes from :func:`srvp.evaluate.evaluate`.
    """
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in results["metrics"]]
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.6),
                               squeeze=False)
        axes = axes[0]
    start = (nt_cond or results["protocol"]["nt_cond"]) + 1
    for ax, m in zip(axes, metrics):
        f = np.asarray(results["metrics"][m]["per_frame"], dtype=np.float64)
        t = np.arange(start, start + f.shape[1])
        mean, ci = f.mean(0), 1.96 * f.std(0) / np.sqrt(len(f))
        ax.plot(t, mean, label=label)
        ax.fill_between(t, mean - ci, mean + ci, alpha=0.3)
        ax.set_xlabel("t")
        ax.set_title(m.upper() + (" (lower is better)" if m == "lpips" else ""),
                     fontsize=9)
    axes[0].legend(fontsize=8)
    fit_page(axes[0].figure)
    axes[0].figure.tight_layout()
    return axes[0].figure


def latent_trajectory(y, labels: Optional[Sequence[str]] = None, ax=None):
    """Latent states projected on their two principal axes, one line per video.

    ``y`` is (T, B, ny) (or (T, ny)); the first state is marked with a dot.
    """
    import matplotlib.pyplot as plt

    y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
    y = y[:, None] if y.ndim == 2 else y
    flat = y.reshape(-1, y.shape[-1])
    centred = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = (centred @ vt[:2].T).reshape(y.shape[0], y.shape[1], 2)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.2))
    for b in range(proj.shape[1]):
        line, = ax.plot(proj[:, b, 0], proj[:, b, 1], "-", lw=1.2,
                        label=None if labels is None else labels[b])
        ax.plot(proj[0, b, 0], proj[0, b, 1], "o", color=line.get_color())
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    if labels is not None:
        ax.legend(fontsize=7)
    return fit_page(ax.figure)


def plot_log(path, terms=("nll", "kl_y", "kl_z", "l2_res")):
    """Training terms and validation PSNR against the step, as one figure."""
    import matplotlib.pyplot as plt

    from .run_folder import read_log

    log = read_log(path)
    fig, axes = plt.subplots(1, len(terms) + 1, figsize=(3 * (len(terms) + 1), 2.8))
    steps = [r["step"] for r in log["train"]]
    for ax, term in zip(axes, terms):
        ax.plot(steps, [r[term] for r in log["train"]], lw=1)
        ax.set_title(term)
        ax.set_xlabel("step")
        if term == "nll":
            ax.set_yscale("symlog")
    ax = axes[-1]
    ax.plot([r["step"] for r in log["val"]], [r["val_psnr"] for r in log["val"]], "o-")
    ax.set_title("validation PSNR (dB)")
    ax.set_xlabel("step")
    for ax in axes:  # step counts in the thousands: few ticks, no overlap
        ax.xaxis.set_major_locator(plt.MaxNLocator(3, integer=True))
    fit_page(fig)
    fig.tight_layout()
    return fig
