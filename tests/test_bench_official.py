"""benchmarks/bench_official.py without the official code: it says what to pass,
and refuses a folder that is not an export of the official repository. (The
timings themselves are a benchmark, run by hand: never a timed test.)"""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_official.py"


def _run(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_without_the_official_code_it_says_what_to_pass():
    import os

    env = {k: v for k, v in os.environ.items() if k != "SRVP_OFFICIAL"}
    done = _run(env=env)
    assert done.returncode == 2
    assert "--official PATH" in done.stderr and "SRVP_OFFICIAL" in done.stderr
    assert "edouardelasalles/srvp" in done.stderr


def test_a_folder_without_the_official_model_is_refused(tmp_path):
    done = _run("--official", str(tmp_path))
    assert done.returncode != 0
    assert "no module/srvp.py" in done.stderr
