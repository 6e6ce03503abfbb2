"""The README's examples run as written: the Python snippet end to end, each
command line through the parser of ``python -m srvp`` (options that no longer
exist fail here, not in a reader's terminal)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from srvp.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.M | re.S)


def srvp_commands() -> list[list[str]]:
    """The arguments after ``-m srvp`` of each command of the bash blocks."""
    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "-m" in words and words[words.index("-m") + 1] == "srvp":
                commands.append(words[words.index("-m") + 2:])
    return commands


def test_the_readme_shows_the_commands():
    names = [c[0] if c[0] != "data" else f"data {c[1]}" for c in srvp_commands()]
    assert {"train", "evaluate", "data mnist-download"} <= set(names)


@pytest.mark.parametrize("args", srvp_commands(), ids=" ".join)
def test_each_command_parses(args):
    build_parser().parse_args(args)  # exits 2 on an unknown option


def test_several_gpus_go_through_nproc():
    """The multi-GPU example uses ``--nproc`` (one clean stop line), and any
    torchrun line runs standalone (no rendezvous server to set up)."""
    lines = [line for b in blocks("bash") for line in b.splitlines()]
    assert any("train" in line and "--nproc 4" in line for line in lines)
    assert all("--standalone" in line for line in lines if "torchrun" in line)


@pytest.mark.slow
def test_the_python_snippet_runs_as_written(tmp_path, tiny_mnist_dir):
    """In a folder laid out as the clone (``book/``) with MNIST where the snippet
    downloads it (``data/mnist``), the snippet prints what its comments say."""
    (snippet,) = [b for b in blocks("python") if "load_official" in b]
    (tmp_path / "book").symlink_to(ROOT / "book", target_is_directory=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(tiny_mnist_dir, target_is_directory=True)
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    count, score = result.stdout.splitlines()
    assert count == "10,678,284"
    psnr = float(re.fullmatch(r"best-of-10 PSNR of 4 test videos: (\S+) dB", score)[1])
    assert 8 < psnr < 40
