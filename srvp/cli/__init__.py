"""Command line: ``python -m srvp <command>`` (also installed as ``srvp``).

Each command lives in its own module and registers itself here.
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

from ..config import PRESETS


def _cmd_presets(args: argparse.Namespace) -> int:
    from ..model_registry import build_model

    names = [args.name] if args.name else list(PRESETS)
    for name in names:
        if name not in PRESETS:
            print(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}",
                  file=sys.stderr)
            return 2
        cfg = PRESETS[name]
        n = sum(p.numel() for p in build_model(cfg).parameters())
        if cfg.model == "svg":
            sizes = (f"svg   nc={cfg.nc} g_dim={cfg.svg.g_dim} z_dim={cfg.svg.z_dim} "
                     f"rnn_size={cfg.svg.rnn_size} nf={cfg.nf} beta={cfg.svg.beta}")
        else:
            sizes = (f"{cfg.archi:5s} nc={cfg.nc} ny={cfg.ny} nz={cfg.nz} "
                     f"nf={cfg.nf} skipco={cfg.skipco} dt=1/{cfg.n_euler_steps} "
                     f"obs_scale={cfg.obs_scale}")
        print(f"{name:8s} {sizes} batch={cfg.batch_size} lr={cfg.lr:g} "
              f"iters={cfg.n_iter:,} params={n:,}")
        if args.name:
            for key, value in cfg.to_dict().items():
                items = value.items() if isinstance(value, dict) else [(None, value)]
                for k, v in items:  # the SVG group as svg.g_dim = ...
                    print(f"  {key}.{k} = {v}" if k else f"  {key} = {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srvp",
        description="Stochastic Latent Residual Video Prediction (ICML 2020): "
                    "data, training, evaluation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("presets", help="list the paper's presets and their sizes",
                       description="Print each preset's main hyperparameters and "
                                   "parameter count, or every field of one preset.")
    p.add_argument("name", nargs="?", help="show every field of this preset")
    p.set_defaults(func=_cmd_presets)
    for command, module in _COMMAND_MODULES.items():
        try:
            mod = __import__(f"srvp.{module}", fromlist=["register"])
        except ImportError as err:  # optional dependency missing
            sub.add_parser(command, help=f"(unavailable: {err})")
            continue
        mod.register(sub)
    return parser


# Modules that add commands: each defines ``register(subparsers)``.
_COMMAND_MODULES: Dict[str, str] = {
    "data": "cli.data", "train": "cli.train", "evaluate": "cli.evaluate",
    "export": "cli.export"}


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for train --nproc
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
