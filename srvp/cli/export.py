"""``python -m srvp export``: a trained model for other runtimes (ONNX), and the
test videos of the browser sampler (book ch. 6 and 7)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .common import USAGE, resource_error

_ONNX_DESC = """\
Write the trained SRVP of RUN (config.json and model.pt) into OUT as five ONNX
files that a sampler chains, and sampler.json (sizes, names, weight format):
  encode.onnx    frames x (T, B, C, H, W) -> codes hx (T, B, nhx) [, skips]
  infer.onnx     hx -> q_y1 (B, 2 ny), content w (B, nw), q_z (T-1, B, 2 nz)
  prior.onnx     state y (B, ny) -> p_z (B, 2 nz), the prior of the next z
  dynamics.onnx  (y, z) -> f(y, z), the Euler step is y + dt f(y, z)
  decode.onnx    (w, y (T, B, ny) [, skips]) -> frames (T, B, C, H, W)
The noise stays outside: srvp.export.sampler.sample runs the files with given
noise exactly as SRVP.predict (and book/_static/sampler/sampler.js in a web
page). --weights int8 stores each weight matrix in 8 bits with one scale per
output channel (a quarter of the size, computed in float32); --check N then
measures what that costs: the best-of-n PSNR on N Moving MNIST test videos,
PyTorch against the export with the same noise, written into sampler.json.
Needs the packages onnx and onnxruntime (pip install "srvp[export]")."""

_EPILOG = """examples:
  python -m srvp export onnx book/runs/cpu --out exported/cpu
  python -m srvp export onnx book/runs/cpu_dt2 --out book/_static/sampler/model \\
      --weights int8 --check 200 --data-dir MNIST_DIR
  python -m srvp export strip --out book/_static/sampler/videos.png --n-videos 32

exit codes: 0 done; 2 a wrong option or file, or too little memory; 4 a full
disk (no space, or the quota reached)."""


def _test_videos(data_dir, n_videos: int):
    """The first ``n_videos`` of the official Moving MNIST test set, uint8
    (N, T, 64, 64)."""
    from ..data import build_test_set, load_mnist

    folder = data_dir or os.environ.get("SRVP_MNIST_DIR")
    if not folder:
        raise ValueError("needs MNIST: give --data-dir DIR or set SRVP_MNIST_DIR")
    images, labels = load_mnist(Path(folder), split="test")
    test = build_test_set(images, labels, num_videos=n_videos, progress=False)
    return test["sequences"].transpose(1, 0, 2, 3)  # (T, N, ..) -> (N, T, ..)


def _run_onnx(args: argparse.Namespace) -> int:
    import torch

    from ..book import weights_digest
    from ..export import export_onnx
    from ..run_folder import load_official

    model, cfg = load_official(args.run)
    source = {"run": Path(args.run).resolve().name,
              "model_sha256": weights_digest(Path(args.run))}
    manifest = export_onnx(model, args.out, weights=args.weights, source=source)
    sizes = sum((Path(args.out) / p["file"]).stat().st_size
                for p in manifest["pieces"].values())
    print(f"{args.out}: 5 ONNX files, {sizes / 1e6:.2f} MB of {args.weights} weights")
    if args.check:
        from ..export.check import psnr_gap

        videos = torch.from_numpy(_test_videos(args.data_dir, args.check))
        videos = videos.float().div(255).transpose(0, 1)[:, :, None]
        manifest["check"] = psnr_gap(model, args.out, videos, args.n_samples,
                                     log=lambda line: print(line, flush=True))
        (Path(args.out) / "sampler.json").write_text(json.dumps(manifest, indent=1)
                                                     + "\n")
        print(json.dumps(manifest["check"], indent=1))
    return 0


def _run_strip(args: argparse.Namespace) -> int:
    from ..export.strip import write_strip

    videos = _test_videos(args.data_dir, args.n_videos)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_strip(args.out, videos)
    print(f"{args.out}: {len(videos)} test videos of {videos.shape[1]} frames, "
          f"{Path(args.out).stat().st_size / 1e3:.0f} kB")
    return 0


def _guarded(run):
    def handler(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except Exception as err:  # a full disk: 4, as in every command
            found = resource_error(err, "fewer videos (--n-videos, --check)")
            if found is None and not isinstance(err, (OSError, ValueError)):
                raise
            code, message = found or (USAGE, str(err))
            print(f"error: {message}", file=sys.stderr)
            return code
    return handler


def register(sub) -> None:
    """Add ``export onnx`` and ``export strip`` to the sub-parsers ``sub``."""
    p = sub.add_parser("export", help="export a model as ONNX, for browsers and "
                       "other runtimes", description=__doc__, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    o = kinds.add_parser("onnx", help="the model as ONNX files", description=_ONNX_DESC,
                         epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    o.add_argument("run", metavar="RUN", help="folder with config.json and model.pt")
    o.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    o.add_argument("--weights", choices=["float32", "int8"], default="float32",
                   help="how weights are stored (default float32)")
    o.add_argument("--check", type=int, default=0, metavar="N",
                   help="measure the best-of-n PSNR gap on N test videos")
    o.add_argument("--n-samples", type=int, default=100,
                   help="samples per video of --check (default 100)")
    o.add_argument("--data-dir", metavar="DIR",
                   help="MNIST for --check (default $SRVP_MNIST_DIR)")
    o.set_defaults(func=_guarded(_run_onnx))
    s = kinds.add_parser("strip", help="test videos as one PNG for the sampler page",
                         description="Write the first N videos of the official "
                         "Moving MNIST test set as one grayscale PNG, one row of "
                         "frames per video.")
    s.add_argument("--out", required=True, metavar="FILE", help="PNG file to write")
    s.add_argument("--n-videos", type=int, default=32, help="videos (default 32)")
    s.add_argument("--data-dir", metavar="DIR", help="MNIST (default $SRVP_MNIST_DIR)")
    s.set_defaults(func=_guarded(_run_strip))
