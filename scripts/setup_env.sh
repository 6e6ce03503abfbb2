#!/usr/bin/env bash
# Create (or update) the project's virtual environment: the package with every
# extra, and the exact versions of the toolchain that build the book.
# Usage: bash scripts/setup_env.sh [VENV_DIR]   (default .venv)
set -euo pipefail
venv="${1:-.venv}"
here="$(cd "$(dirname "$0")/.." && pwd)"
stamp="$venv/.srvp-setup"
# Headless Chromium for tests/test_browser_sampler.py (Debian's package; as root
# only, and only when no Chromium is on the PATH: a second run does nothing).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
    || echo "warning: chromium not installed; the browser test will be skipped" >&2
fi
want="$(cat "$here/pyproject.toml" "$here/scripts/setup_env.sh" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0  # up to date
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install --quiet --upgrade pip
# torch/torchvision: this pair installs and imports together (lpips needs
# torchvision). The pins live here, never in pyproject.toml, so that
# `pip install srvp` on Colab keeps Colab's own torch.
$pip install --quiet "torch==2.14.1" "torchvision==0.29.1" \
  "jupyter-book==1.0.4.post1" "jupytext==1.19.6" "papermill==2.7.0" \
  "nbval==0.11.0" "ipywidgets==8.1.9" "lpips==0.1.4" ruff
$pip install --quiet -e "$here[book,test,metrics,viz,export]"
echo "$want" > "$stamp"
