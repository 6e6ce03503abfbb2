"""Reading and plotting a run's ``log.jsonl`` (book ch. 4)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List


def read_log(path) -> Dict[str, List[dict]]:
    """Split a log into ``{"train": [...], "val": [...]}`` records, by step."""
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    out: Dict[str, List[dict]] = {"train": [], "val": []}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out["val" if "val_psnr" in rec else "train"].append(rec)
    return out


def plot_log(path, terms=("nll", "kl_y", "kl_z", "l2_res")):
    """Training terms and validation PSNR against the step, as one figure."""
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    return fig
