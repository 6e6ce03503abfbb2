"""Draw the book's static figures of the model (the pages that are not executed,
such as the introduction) from the package: `srvp.diagram` on the `cpu` preset.

Usage: python scripts/make_figures.py [--out book/_static/figures]

The SVG keeps its text as text (not paths), so a test can check that the
figure still says what the code draws (tests/test_diagram.py).
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "srvp"})

from srvp import preset  # noqa: E402
from srvp.diagram import graphical_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"graphical_model.svg": lambda: graphical_model(preset("cpu"))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "book" / "_static" / "figures")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in FIGURES.items():
        draw().savefig(args.out / name, metadata={"Date": None}, bbox_inches="tight")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
