"""Pictures of the model itself, drawn from the package's modules (book intro
and ch. 2): the generative and the inference model as graphs, and the networks
as blocks with the tensor shapes a forward pass gives them. Both change with the
code and the config they are drawn from.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch

from .config import Config
from .model import SRVP

FONT = 10  # points: about 13 px at the book's 100 % zoom
OBSERVED, LATENT, CONTENT = "#d9d9d9", "white", "#fde0c5"
INFER_COLOR = "tab:blue"

# ------------------------------------------------------------ the two graphs
_Node = Tuple[float, float, str, str]  # x, y, label, fill


def _nodes(n: int, inference: bool = False) -> Dict[str, _Node]:
    """Positions of x_t (bottom), y_t (middle), z_t (top) and w (left); in the
    inference graph also the LSTM states h_t between x_t and y_t."""
    nodes = {"w": (0.0, 0.0, "$w$", CONTENT)}
    for t in range(1, n + 1):
        nodes[f"x{t}"] = (t, 0.0, f"$x_{t}$", OBSERVED)
        if not inference:
            nodes[f"y{t}"] = (t, 1.3, f"$y_{t}$", LATENT)
        elif t == 1:
            nodes["y1"] = (0.45, 2.5, "$y_1$", LATENT)
        if t > 1:
            nodes[f"z{t}"] = (t - 0.5, 2.5, f"$z_{t}$", LATENT)
        if inference:
            nodes[f"h{t}"] = (t + 0.35, 1.1, f"$h_{t}$", "#e3ecf7")
    return nodes


def _draw_nodes(ax, nodes: Dict[str, _Node]) -> None:
    from matplotlib.patches import Circle

    for name, (x, y, label, fill) in nodes.items():
        radius = 0.2 if name.startswith("h") else 0.27
        ax.add_patch(Circle((x, y), radius, facecolor=fill, edgecolor="black", lw=1.2))
        ax.text(x, y, label, ha="center", va="center",
                fontsize=FONT if name.startswith("h") else FONT + 2)


def _arrow(ax, nodes, a: str, b: str, color="black", style="-", rad=0.0) -> None:
    (xa, ya, *_), (xb, yb, *_) = nodes[a], nodes[b]
    ax.annotate("", xy=(xb, yb), xytext=(xa, ya),
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2, linestyle=style,
                                shrinkA=11, shrinkB=11,
                                connectionstyle=f"arc3,rad={rad}"))


def _frame(ax, nodes, title: str) -> None:
    _draw_nodes(ax, nodes)
    ax.set_title(title, fontsize=FONT + 1, loc="left")
    ax.set_xlim(-0.5, max(x for x, *_ in nodes.values()) + 0.5)
    ax.set_ylim(-0.9, 2.9)
    ax.set_aspect("equal")
    ax.axis("off")


def graphical_model(cfg: Config, n_frames: int = 6):
    """The generative model (top) and the inference model (bottom).

    Top: y_1 from N(0, I); each z_t from the prior p(z_t | y_t-1) (grey); y_t
    from y_t-1 and z_t (the residual step); every frame x_t from y_t and the
    content w. Bottom: the posterior: y_1 from the first ``cfg.nt_inf`` frames
    (the bracket), z_t from the LSTM state h_t, which has read x_1 to x_t; w from
    a set of ``cfg.nt_inf`` frames (the last ones at test time). The other
    states follow from y_1 and the z_t by the residual step.
    """
    import matplotlib.pyplot as plt

    n, k = n_frames, min(cfg.nt_inf, n_frames)
    fig, (gen, inf) = plt.subplots(2, 1, figsize=(8, 6.4))
    nodes = _nodes(n)
    for t in range(1, n + 1):
        _arrow(gen, nodes, f"y{t}", f"x{t}")
        _arrow(gen, nodes, "w", f"x{t}", rad=-0.22 if t > 1 else 0.0)
        if t > 1:
            _arrow(gen, nodes, f"y{t - 1}", f"y{t}")
            _arrow(gen, nodes, f"y{t - 1}", f"z{t}", color="tab:gray")
            _arrow(gen, nodes, f"z{t}", f"y{t}")
    _frame(gen, nodes, "generative model: $y_t = y_{t-1} + f(y_{t-1}, z_t)$, "
                       "$x_t$ decoded from $(w, y_t)$")
    nodes = _nodes(n, inference=True)
    for t in range(1, n + 1):
        _arrow(inf, nodes, f"x{t}", f"h{t}", INFER_COLOR)
        if t > 1:
            _arrow(inf, nodes, f"h{t - 1}", f"h{t}", INFER_COLOR)
            _arrow(inf, nodes, f"h{t}", f"z{t}", INFER_COLOR, "--")
    inf.plot([0.65, 0.65, k + 0.3, k + 0.3], [-0.45, -0.55, -0.55, -0.45],
             color=INFER_COLOR, lw=1.2)
    for target, style in (("y1", "--"), ("w", ":")):
        inf.annotate("", xy=nodes[target][:2], xytext=(0.6, -0.5),
                     arrowprops=dict(arrowstyle="-|>", color=INFER_COLOR, lw=1.2,
                                     linestyle=style, shrinkA=0, shrinkB=11))
    inf.text(k / 2 + 0.5, -0.8, f"the first {k} frames ($y_1$); a set of "
             f"{cfg.nt_inf} frames ($w$)", ha="center", fontsize=FONT - 1)
    _frame(inf, nodes, "inference model: $q(y_1 | x_{1:k})$, $q(z_t | x_{1:t})$ "
                       "through an LSTM, $w$ from a set of frames")
    fig.tight_layout()
    return fig


# ------------------------------------------------------- the network blocks
_TB, _B = ("T·B",), ("B",)
#: Block -> (modules of SRVP, symbols of the leading dimensions of its input and
#: of its output, position, text)
BLOCKS = {
    "encoder": (("encoder",), (_TB, _TB), (1.2, 2.0), "frame encoder h"),
    "content": (("w_proj", "w_inf"), (("k", "B"), _B), (4.0, 3.8),
                "content w (sum over k)"),
    "q_y": (("q_y",), (_B, _B), (4.0, 2.4), "q(y_1 | x_1:k)"),
    "q_z": (("inf_z", "q_z"), (("T", "B"), _B), (4.0, 1.0),
            "LSTM + q(z_t | x_1:t)"),
    "p_z": (("p_z",), (_B, _B), (7.0, 0.0), "prior p(z_t | y_t-1)"),
    "dynamics": (("dynamics",), (_B, _B), (7.0, 1.7), "residual f(y, z)"),
    "decoder": (("decoder",), (_TB, _TB), (9.6, 3.2), "frame decoder g"),
}
_LINKS = [("encoder", "content"), ("encoder", "q_y"), ("encoder", "q_z"),
          ("q_y", "dynamics"), ("q_z", "dynamics"), ("p_z", "dynamics"),
          ("dynamics", "p_z"), ("dynamics", "decoder"), ("content", "decoder")]


def _fmt(shape: Sequence[int], lead: Sequence[str]) -> str:
    dims = [*lead[: len(shape)], *map(str, shape[len(lead):])]
    return "(" + ", ".join(dims) + ")"


def block_shapes(model: SRVP, cfg: Config, nt: int = 7, bsz: int = 2
                 ) -> Dict[str, Dict[str, object]]:
    """Input and output shape of each block at its first call in one forward pass
    (evaluation mode), with leading dimensions as symbols, and its parameters."""
    seen: Dict[str, List[Tuple[int, ...]]] = {}
    hooks = []
    for name, (mods, *_) in BLOCKS.items():
        for i, mod in enumerate(mods):
            if not hasattr(model, mod):
                continue  # content=False builds no content network

            def hook(_, inputs, output, name=name, first=i == 0):
                out = output[0] if isinstance(output, tuple) else output
                if name not in seen and first:
                    seen[name] = [tuple(inputs[0].shape), tuple(out.shape)]
                elif name in seen and not first and len(seen[name]) == 2:
                    seen[name][1] = tuple(out.shape)
            hooks.append(getattr(model, mod).register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.rand(nt, bsz, cfg.nc, cfg.nx, cfg.nx, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = {}
    for name, (mods, lead, *_) in BLOCKS.items():
        if name in seen:
            shape_in, shape_out = seen[name][:2]
            params = sum(p.numel() for m in mods if hasattr(model, m)
                         for p in getattr(model, m).parameters())
            out[name] = {"in": _fmt(shape_in, lead[0]),
                         "out": _fmt(shape_out, lead[1]), "params": params}
    return out


def network_diagram(model: SRVP, cfg: Config):
    """The networks of ``model`` as blocks: what each computes, its input and
    output shapes (from :func:`block_shapes`) and its parameter count."""
    import matplotlib.pyplot as plt

    shapes = block_shapes(model, cfg)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    boxes = {}
    for name, (_, _, (x, y), text) in BLOCKS.items():
        if name not in shapes:
            continue
        s = shapes[name]
        boxes[name] = ax.text(
            x, y, f"{text}\n{s['in']} → {s['out']}\n{s['params']:,d} parameters",
            ha="center", va="center", fontsize=FONT - 1,
            bbox=dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="tab:blue"))
    for a, b in _LINKS:
        if a in boxes and b in boxes:  # from box edge to box edge
            ax.annotate("", xy=(0.5, 0.5), xycoords=boxes[b], xytext=(0.5, 0.5),
                        textcoords=boxes[a],
                        arrowprops=dict(arrowstyle="-|>", color="tab:gray", lw=1.2,
                                        patchA=boxes[a].get_bbox_patch(),
                                        patchB=boxes[b].get_bbox_patch(),
                                        connectionstyle="arc3,rad=0.12"))
    ax.text(-0.3, 2.0, f"frames\n(T, B, {cfg.nc}, {cfg.nx}, {cfg.nx})", ha="right",
            va="center", fontsize=FONT)
    ax.text(9.6, 4.3, f"frames (T, B, {cfg.nc}, {cfg.nx}, {cfg.nx})", ha="center",
            va="center", fontsize=FONT)
    ax.set_xlim(-1.8, 11.2)
    ax.set_ylim(-0.6, 4.6)
    ax.axis("off")
    ax.set_title(f"{cfg.archi.upper()} networks, ny={cfg.ny}, nz={cfg.nz}, "
                 f"{sum(p.numel() for p in model.parameters()):,d} parameters",
                 fontsize=FONT + 1)
    fig.tight_layout()
    return fig
