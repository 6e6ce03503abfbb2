"""Run every chapter as a reader on Colab does: in a clean environment, through
the chapter's own install cell.

The environment (``_build/colab/venv``) holds only what Colab preinstalls among
the packages the book uses: torch and torchvision at the versions of the running
interpreter, numpy, matplotlib, ipywidgets, tqdm, scikit-image, huggingface_hub,
ipykernel and papermill. It does not hold ``srvp``, ``lpips``, ``av``,
``jupytext`` or ``nbval``: each chapter (its tracked notebook, in the smoke
profile) must install what it needs in its first cell, which
``SRVP_INSTALL=file:///...`` points at this checkout instead of the public
repository.

What it proves: the install cells name every extra their chapter needs and keep
torch; the chapters run with only Colab's packages beside them. What it cannot:
Colab's GPU, Colab's exact package versions, the gpu profile, the network.

Usage: python scripts/colab_check.py [--only NAME ...]   (part of `make test`)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "_build" / "colab"
PREINSTALLED = ["numpy", "matplotlib", "ipywidgets", "tqdm", "scikit-image",
                "huggingface_hub", "ipykernel", "papermill"]
ABSENT = ["srvp", "lpips", "av", "jupytext", "nbval"]


def make_venv(venv: Path) -> Path:
    """The clean environment, created once (a stamp names what it holds)."""
    import torch
    import torchvision

    pins = [f"torch=={torch.__version__.split('+')[0]}",
            f"torchvision=={torchvision.__version__.split('+')[0]}"]
    want = " ".join(pins + PREINSTALLED)
    python, stamp = venv / "bin" / "python", venv / ".colab-stamp"
    if stamp.exists() and stamp.read_text() == want:
        _run([python, "-m", "pip", "uninstall", "-q", "-y", *ABSENT])  # last run's
        return python
    _run([sys.executable, "-m", "venv", "--clear", venv])
    _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    _run([python, "-m", "pip", "install", "-q", *pins, *PREINSTALLED])
    stamp.write_text(want)
    return python


def _run(cmd) -> None:
    """Run a set-up command quietly; show its output only if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}")


def check_absent(python: Path) -> None:
    code = ("import importlib.util, sys; "
            f"found = [m for m in {ABSENT!r} if importlib.util.find_spec(m)]; "
            "sys.exit(', '.join(found) or None)")
    result = subprocess.run([python, "-c", code], capture_output=True, text=True,
                            cwd=COLAB)  # not the checkout: its srvp/ would import
    if result.returncode:
        raise SystemExit(f"the Colab-like environment holds {result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_book import chapter_env, notebook_chapters, select

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these chapters, e.g. 05_evaluation")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    python = make_venv(COLAB / "venv")
    check_absent(python)
    print(f"Colab-like environment ready in {time.perf_counter() - start:.0f} s",
          flush=True)
    env = {**os.environ, **chapter_env(), "SRVP_INSTALL": ROOT.as_uri(),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    failed = []
    for md in select(notebook_chapters(), args.only):
        t0 = time.perf_counter()
        result = subprocess.run(
            [python, "-m", "papermill", md.with_suffix(".ipynb"),
             COLAB / md.with_suffix(".ipynb").name, "-p", "profile", "smoke",
             "--cwd", md.parent, "--no-progress-bar", "-k", "python3"],
            env=env, capture_output=True, text=True)
        status = "ok" if result.returncode == 0 else "FAILED"
        print(f"{md.stem}: {status} in {time.perf_counter() - t0:.1f} s", flush=True)
        if result.returncode:
            failed.append(md.stem)
            print(result.stderr[-3000:], file=sys.stderr)
    print(f"Colab-like check: {len(failed)} failed, in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
