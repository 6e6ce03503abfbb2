"""Copy a run's weights (as float16), config, log and results into the book.

Usage: python scripts/export_run.py RUN_DIR [DEST] (default book/_static/runs/cpu)

The float16 copy halves the file (the shipped weights must stay under 15 MB);
`srvp.load_official` casts them back to float32 when it loads them.
"""
import argparse
import json
import os
import shutil
from pathlib import Path

from srvp.checkpoint import atomic_torch_save, read_state_dict


def _portable(arg: str) -> str:
    """Local paths in a recorded command become placeholders."""
    if os.sep in arg and Path(arg).exists() and Path(arg).is_dir() and \
            any(Path(arg).glob("*idx*")):
        return "MNIST_DIR"
    if arg.endswith("__main__.py") or arg.endswith(os.sep + "srvp"):
        return "-m srvp"
    return arg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path, nargs="?", default=Path("book/_static/runs/cpu"))
    p.add_argument("--checkpoint", default="model.pt")
    args = p.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    sd = read_state_dict(args.run / args.checkpoint)
    half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    atomic_torch_save(half, args.dest / "model.pt")
    for name in ("config.json", "log.jsonl", "results.json"):
        if (args.run / name).exists():
            shutil.copyfile(args.run / name, args.dest / name)
    if (args.run / "run.json").exists():  # keep the command, not local paths
        info = json.loads((args.run / "run.json").read_text())
        info["argv"] = [_portable(a) for a in info.get("argv", [])]
        (args.dest / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    size = (args.dest / "model.pt").stat().st_size / 2**20
    print(f"exported {args.run / args.checkpoint} -> {args.dest} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
