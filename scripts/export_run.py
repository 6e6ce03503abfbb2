"""Copy a run's weights (as float16), config, log and results into the book.

Usage: python scripts/export_run.py RUN_DIR [DEST] (default book/runs/cpu)

The float16 copy halves the file; `srvp.load_official` casts the weights back to
float32 when it loads them (`srvp.run_folder.export_run`).
"""
import argparse
from pathlib import Path

from srvp.run_folder import export_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path, nargs="?", default=Path("book/runs/cpu"))
    p.add_argument("--checkpoint", default="model.pt")
    args = p.parse_args()
    weights = export_run(args.run, args.dest, args.checkpoint)
    size = weights.stat().st_size / 2**20
    print(f"exported {args.run / args.checkpoint} -> {args.dest} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
