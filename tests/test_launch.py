"""``train --nproc N``: several processes that stop together and say so once."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from srvp import run_folder as rf
from srvp.cli.launch import worker_argv

# The smoke model, long enough to be stopped by hand, on two CPU processes.
_LONG = ["--preset", "smoke", "--set", "lr_scheduling_burnin=50000",
         "--set", "lr_scheduling_n_iter=50000", "--set", "val_interval=100000",
         "--device", "cpu", "--ckpt-interval", "1000"]


def _cmd(out, data_dir, *extra):
    return [sys.executable, "-m", "srvp", "train", "--nproc", "2", *_LONG,
            "--data-dir", str(data_dir), "--out", str(out), *extra]


def _closing_lines(stdout):
    return [line for line in stdout.splitlines()
            if line.startswith(("stopped", "finished"))]


def test_worker_argv_drops_nproc_only():
    assert worker_argv(["train", "--nproc", "4", "--out", "r", "--nproc=2"]) == [
        "train", "--out", "r"]


def test_nproc_below_one_is_refused(tmp_path):
    res = subprocess.run([sys.executable, "-m", "srvp", "train", "--preset", "smoke",
                          "--nproc", "0", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--nproc 0" in res.stderr
    assert not (tmp_path / "r").exists()


def test_ctrl_c_stops_every_process_at_one_step_with_one_line(tmp_path,
                                                              tiny_mnist_dir):
    """Ctrl-C (SIGINT to the terminal's process group) under --nproc 2: the
    processes stop after the same step, rank 0 keeps it and prints one line,
    nothing prints a traceback, the exit code says "stopped early", and the run
    resumes from that step."""
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(out, tiny_mnist_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group, as a shell's job
    deadline = time.monotonic() + 120
    while not (out / "log.jsonl").exists() or len(rf.read_log(out)["train"]) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training did not start in 2 minutes"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    lines = _closing_lines(stdout)
    assert len(lines) == 1 and lines[0].startswith("stopped (resume"), stdout
    step = int(re.search(r"at step ([\d,]+)/", lines[0])[1].replace(",", ""))
    assert rf.read_checkpoint(out)["step"] == step > 10

    res = subprocess.run(_cmd(out, tiny_mnist_dir, "--resume", "--max-steps",
                              str(step + 3)), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1, res.stderr
    assert _closing_lines(res.stdout) == [
        f"stopped (resume with --resume) at step {step + 3:,}/100,000; no "
        f"validation yet; run folder {out}"]
    assert "Traceback" not in res.stderr


def test_ranks_agree_on_stopping_every_step_on_cpus_every_log_interval_on_gpus(
        monkeypatch):
    """The stop flag is all-reduced after every step on CPUs; on GPUs, where
    reading it waits for the device, only every log_interval steps. --max-steps
    needs no agreement (every rank reaches the same step)."""
    import types

    import torch

    from srvp.train import Options, Trainer

    calls = []

    def all_reduce(flag, op=None):  # another rank was signalled
        calls.append(flag.item())
        flag.fill_(1.0)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    rank = types.SimpleNamespace(opts=Options(log_interval=10), world=2, step=3,
                                 device=torch.device("cpu"), elapsed=0.0,
                                 _stop_signal=None)
    assert Trainer._should_stop(rank) is True and calls == [0.0]
    rank.device = torch.device("cuda")  # step 3: no read of the flag, no sync
    assert Trainer._should_stop(rank) is False and calls == [0.0]
    rank.opts, rank.step = Options(log_interval=10, max_steps=3), 3
    assert Trainer._should_stop(rank) is True and calls == [0.0]
