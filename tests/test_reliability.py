"""Reliability of training: nothing read runs code, options are checked
before any work or write, any stop leaves a run that continues, nothing
non-finite is saved, one writer per folder, a full disk is reported."""
import errno
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import SRVP, load_official, preset, save_experiment
from srvp import run_folder as rf
from srvp.cli import main
from srvp.fileio import FolderLock
from srvp.run_checks import RunFolderError
from srvp.train import Options, Trainer, train

QUIET = dict(progress=False)


def _cli(data, out, *extra):
    return ["train", "--preset", "smoke", "--data-dir", str(data), "--out", str(out),
            *extra]


def _run(capsys, args):
    """``srvp.cli.main(args)`` -> (exit code, stderr); never a traceback."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return code, err


def _snapshot(folder):
    """Every file of ``folder`` and its bytes (a dict; empty when absent)."""
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _tensors(obj):
    """Every tensor inside nested dicts, lists and tuples."""
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _assert_equal(a, b, where=""):
    """Nested contents (dicts, lists, tensors, arrays, numbers) equal to the bit."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a) or isinstance(a, np.ndarray):
        assert type(a) is type(b) and a.dtype == b.dtype, where
        assert (torch.equal(a, b) if torch.is_tensor(a)
                else np.array_equal(a, b)), where
    else:
        assert a == b or (a != a and b != b), (where, a, b)


def _state(folder):
    """The checkpoint of ``folder`` without its training time."""
    ckpt = rf.read_checkpoint(folder)
    del ckpt["elapsed"]
    return ckpt


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_mnist_dir):
    """A smoke run stopped at step 2 (seed 1, amp off): copy it, don't change it."""
    out = tmp_path_factory.mktemp("base") / "run"
    train(preset("smoke"), out, tiny_mnist_dir, max_steps=2, **QUIET)
    return out


def _copy(run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


# ---------------------------------------------------------------- 1. data only
def test_checkpoint_is_data(tmp_path, base_run):
    """checkpoint.pt loads with weights_only=True and gives the generators' own
    state forms back; a checkpoint pickled with NumPy arrays (no format of this
    package) is refused with a message, not read."""
    raw = torch.load(base_run / "checkpoint.pt", weights_only=True)
    assert raw["step"] == 2 and all(torch.is_tensor(t) for t in _tensors(raw["rng"]))
    ckpt = rf.read_checkpoint(base_run)
    random.setstate(ckpt["rng"]["python"])  # back in the generators' own form
    np.random.set_state(ckpt["rng"]["numpy"])
    other = _copy(base_run, tmp_path)
    torch.save(ckpt, other / "checkpoint.pt")  # NumPy arrays inside: not data
    with pytest.raises(pickle.UnpicklingError):
        torch.load(other / "checkpoint.pt", weights_only=True)
    with pytest.raises((rf.UnsafeFileError, ValueError)):
        rf.read_checkpoint(other)


class _Evil:
    """Unpickling it would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def test_code_in_a_checkpoint_is_refused(tmp_path, capsys, base_run, tiny_mnist_dir):
    marker = tmp_path / "marker"
    run = _copy(base_run, tmp_path)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "extra": _Evil(marker)}, run / "checkpoint.pt")
    with pytest.raises(rf.UnsafeFileError, match="builtins.exec"):
        rf.read_checkpoint(run)
    before = _snapshot(run)
    code, err = _run(capsys, _cli(tiny_mnist_dir, run, "--resume"))
    assert code == 2 and "checkpoint.pt" in err and "could run code" in err
    assert not marker.exists() and _snapshot(run) == before
    # model.pt through load_official (weights_only=True)
    save_experiment(SRVP(preset("smoke")), tmp_path / "xp")
    torch.save({"weights": _Evil(marker)}, tmp_path / "xp" / "model.pt")
    with pytest.raises(ValueError, match="could run code"):
        load_official(tmp_path / "xp")
    assert not marker.exists()


# ------------------------------------------------------ 4. options checked first
def _damage(data):
    def setup(tmp_path, base_run):
        run = _copy(base_run, tmp_path)
        ckpt = run / "checkpoint.pt"
        ckpt.write_bytes(data(ckpt.read_bytes()))
        return run
    return setup


def _file(tmp_path, base_run):
    (tmp_path / "file").write_text("not a folder")
    return tmp_path / "file"


BAD = {  # name: (extra arguments, text of the message, setup of --out)
    "val_interval": (["--set", "val_interval=0"], "val_interval=0", None),
    "ckpt_interval": (["--ckpt-interval", "0"], "ckpt_interval=0", None),
    "log_interval": (["--log-interval", "0"], "log_interval=0", None),
    "workers": (["--workers", "-1"], "workers=-1", None),
    "max_steps_0": (["--max-steps", "0"], "max_steps=0", None),
    "max_steps_neg": (["--max-steps", "-3"], "max_steps=-3", None),
    "time_limit": (["--time-limit", "-5"], "time_limit=-5", None),
    "nt_cond": (["--set", "val_seq_len=2"], "nt_cond=2 leaves no frame", None),
    "device": (["--device", "bogus"], "'bogus'", None),
    "no_cuda": (["--device", "cuda"], "CUDA is not available", None),
    "lr_change": (["--set", "lr=1e-3", "--resume"], "--allow-change lr",
                      lambda tmp, base: _copy(base, tmp)),
    "out_is_file": ([], "is a file, not a folder", _file),
    "truncated": (["--resume"], "truncated or damaged",
                  _damage(lambda b: b[: len(b) // 2])),
    "random_bytes": (["--resume"], "truncated or damaged",
                     _damage(lambda b: os.urandom(len(b)))),
    "seed": (["--resume", "--seed", "2"], "--seed 1, not --seed 2",
             lambda tmp, base: _copy(base, tmp)),
    "amp": (["--resume", "--amp", "bf16"], "--amp off, not --amp bf16",
            lambda tmp, base: _copy(base, tmp)),
    "resume_nothing": (["--resume"], "does not exist", None),
    "lr_negative": (["--set", "lr=-1"], "lr=-1.0: the learning rate", None),
    "lr_inf": (["--set", "lr=inf"], "lr=inf: the learning rate", None),
    "beta_z_negative": (["--set", "beta_z=-1"], "beta_z=-1.0", None),
    "l2_res_nan": (["--set", "l2_res=nan"], "l2_res=nan", None),
    "obs_scale_0": (["--set", "obs_scale=0"], "obs_scale=0.0", None),
    "unknown_field": (["--set", "nope=1"], "--set nope: unknown config field", None),
    "bad_type": (["--set", "lr=abc"], "expected a value of type float", None),
    "no_value": (["--set", "lr"], "expected key=value", None),
    "nt_inf": (["--set", "nt_inf=9"], "nt_inf=9 exceeds nt_cond", None),
    "archi": (["--set", "archi=resnet"], "archi='resnet'", None),
    "frame_size": (["--set", "nx=63"], "nx=63", None),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_fails_first_and_writes_nothing(name, tmp_path, capsys, monkeypatch,
                                                  base_run, tiny_mnist_dir):
    extra, message, setup = BAD[name]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = setup(tmp_path, base_run) if setup else tmp_path / "run"
    before = _snapshot(out) if out.is_dir() else None
    code, err = _run(capsys, _cli(tiny_mnist_dir, out, *extra))
    assert code == 2 and message in err, err
    if before is None:
        assert not out.is_dir()  # no run folder for an input error
    else:
        assert _snapshot(out) == before  # nothing changed, no lock, no temporary


def test_a_read_only_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                     tiny_mnist_dir):
    """--out inside a folder without write permission: one line, exit 2, nothing
    made. Root ignores the permission bits, so there the check's question is
    answered as it is for any other user."""
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    if os.access(parent, os.W_OK):  # root: chmod does not stop it
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, *a, **kw: False if (
            Path(path) == parent and mode & os.W_OK) else real(path, mode, *a, **kw))
    try:
        code, err = _run(capsys, _cli(tiny_mnist_dir, parent / "run"))
        assert code == 2 and "permission denied" in err, err
        assert not (parent / "run").exists() and not list(parent.iterdir())
    finally:
        parent.chmod(0o700)


def test_debug_shows_the_traceback_and_bugs_say_so(tmp_path, capsys, monkeypatch,
                                                   tiny_mnist_dir):
    with pytest.raises(ValueError, match="bogus"):
        main(_cli(tiny_mnist_dir, tmp_path / "a", "--device", "bogus", "--debug"))

    def bug(*args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("srvp.train.validation_batches", bug)
    code, err = _run(capsys, _cli(tiny_mnist_dir, tmp_path / "b"))
    assert code == 5 and "ZeroDivisionError: a bug" in err and "--debug" in err


# ------------------------------------------------ 2. any stop leaves a run
def test_a_run_stopped_before_its_first_checkpoint_continues(tmp_path, capsys,
                                                             tiny_mnist_dir):
    """config.json, run.json, a killed writer's temporary file and a truncated
    log line, but no checkpoint: --resume starts from step 0, and so does a new
    run; a folder holding weights is never taken over."""
    run = tmp_path / "run"
    run.mkdir()
    preset("smoke").save(run / "config.json")
    (run / "run.json").write_text("{}")
    (run / ".checkpoint.pt.x1y2.part").write_bytes(b"half")
    (run / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    with pytest.warns(UserWarning, match="log.jsonl: dropped its truncated"):
        code, err = _run(capsys, _cli(tiny_mnist_dir, run, "--resume"))
    assert code == 0 and "starting it from step 0" in err
    assert not list(run.glob(".*.part")) and not (run / "run.lock").exists()
    assert rf.read_checkpoint(run)["step"] == 10
    assert [r["step"] for r in rf.read_log(run)["train"]] == [1, 10]
    (run / "checkpoint.pt").unlink()
    (run / "model.pt").unlink()
    (run / "model_best.pt").unlink()
    code, err = _run(capsys, _cli(tiny_mnist_dir, run))
    assert code == 0 and "a new run replaces it" in err
    (run / "checkpoint.pt").unlink()
    code, err = _run(capsys, _cli(tiny_mnist_dir, run))
    assert code == 2 and "already holds a run (model.pt, model_best.pt)" in err
    code, err = _run(capsys, _cli(tiny_mnist_dir, run, "--resume"))
    assert code == 2 and "cannot be resumed" in err


def test_truncated_log_line_is_repaired_on_resume(tmp_path, base_run, tiny_mnist_dir):
    run = _copy(base_run, tmp_path)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 3, "los')
    with pytest.warns(UserWarning, match=f"{run / 'log.jsonl'}: dropped"):
        train(preset("smoke"), run, tiny_mnist_dir, resume=True, **QUIET)
    steps = [r["step"] for r in rf.read_log(run)["train"]]
    assert steps == sorted(steps) and steps[-1] == 10


# -------------------------------------------------- 5. one writer per folder
def test_one_trainer_per_folder(tmp_path, capsys, base_run, tiny_mnist_dir):
    run, smoke = _copy(base_run, tmp_path), preset("smoke")
    lock = FolderLock(run / "run.lock")
    lock.acquire()  # another trainer, as far as the lock is concerned
    try:
        code, err = _run(capsys, _cli(tiny_mnist_dir, run, "--resume"))
        assert code == 2 and f"in use by another trainer (pid {os.getpid()})" in err
    finally:
        lock.release()
    t = Trainer(smoke, run, tiny_mnist_dir, Options(**QUIET), resume=True)
    lock.acquire()  # taken between the check and the first write
    try:
        with pytest.raises(RunFolderError, match="in use by another trainer"):
            t.fit()
    finally:
        lock.release()
    train(smoke, run, tiny_mnist_dir, resume=True, max_steps=3, **QUIET)
    with pytest.raises(RunFolderError, match="changed while this trainer"):
        t.fit()  # another trainer wrote a checkpoint since t read its own
    (run / "run.lock").write_text("999999999\n")  # left by a killed trainer
    code, err = _run(capsys, _cli(tiny_mnist_dir, run, "--resume"))
    assert code == 0 and not (run / "run.lock").exists()


# ------------------------------------------- 3. and 6. divergence, changes
@pytest.mark.parametrize("ckpt_interval", [1, 100])
def test_divergence_saves_nothing_non_finite_then_resumes(
        tmp_path, capsys, monkeypatch, tiny_mnist_dir, ckpt_interval):
    """The weights become infinite at step 1 (an optimiser step made to blow up,
    as a far too large learning rate does); the run stops (a check before the
    save, or the next loss) with advice that works as written."""
    run = tmp_path / "run"
    args = _cli(tiny_mnist_dir, run, "--ckpt-interval", ckpt_interval)
    adam_step = torch.optim.Adam.step

    def blow_up(self, *a, **kw):
        out = adam_step(self, *a, **kw)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", blow_up)
    code, err = _run(capsys, args + ["--set", "lr=0.001"])
    monkeypatch.undo()
    assert code == 3 and ("non-finite" if ckpt_interval == 1 else "loss is") in err
    assert "--resume --set lr=0.0001 --allow-change lr" in err
    for name in ("checkpoint.pt", "model.pt", "model_best.pt"):
        if (run / name).exists():
            for t in _tensors(torch.load(run / name, weights_only=True)):
                assert not t.is_floating_point() or torch.isfinite(t).all(), name
    assert rf.read_checkpoint(run)["step"] == 0
    code, err = _run(capsys, args + ["--resume", "--set", "lr=1e-4"])
    assert code == 2 and "--allow-change lr" in err
    code, err = _run(capsys, args + ["--resume", "--set", "lr=1e-4", "--allow-change",
                                     "lr", "--amp", "bf16", "--allow-change", "amp"])
    assert code == 0, err
    history = json.loads((run / "run.json").read_text())["history"]
    assert history == [{"step": 0, "field": "lr", "old": 1e-3, "new": 1e-4},
                       {"step": 0, "field": "amp", "old": "off", "new": "bf16"}]
    assert rf.read_checkpoint(run)["options"]["amp"] == "bf16"


# ------------------------------------------------------------ 7. full disk
def test_full_disk_is_reported_and_keeps_the_previous_files(
        tmp_path, capsys, monkeypatch, tiny_mnist_dir):
    run, calls, save = tmp_path / "run", [], torch.save

    def full_after_four(obj, f, *args, **kw):  # checkpoint.pt of step 2 fails
        calls.append(1)
        if len(calls) > 4:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, f, *args, **kw)
    monkeypatch.setattr(torch, "save", full_after_four)
    args = _cli(tiny_mnist_dir, run, "--ckpt-interval", "1")
    code, err = _run(capsys, args)
    assert code == 4
    assert f"no space left on device while writing {run / 'checkpoint.pt'}" in err
    assert rf.read_checkpoint(run)["step"] == 1 and not list(run.glob(".*.part"))
    monkeypatch.setattr(torch, "save", save)
    code, err = _run(capsys, args + ["--resume"])
    assert code == 0 and rf.read_checkpoint(run)["step"] == 10


# ------------------------------------------------------- 8. kill -9, anywhere
def test_kill_at_random_moments_then_resume(tmp_path, tiny_mnist_dir):
    """A real trainer killed (SIGKILL) at random moments, from its first write
    on, then resumed: its final checkpoint (weights, optimiser, step, RNG),
    weights and log equal those of an uninterrupted run."""
    ref, run = tmp_path / "ref", tmp_path / "run"

    def command(out):
        return [sys.executable, "-m", "srvp", *_cli(
            tiny_mnist_dir, out, "--ckpt-interval", "1", "--set",
            "lr_scheduling_burnin=18")]  # 20 steps
    subprocess.run(command(ref), check=True, capture_output=True)
    rng, kills = random.Random(25), 0
    while True:
        cmd = command(run) + (["--resume"] if run.exists() else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if kills < 5:  # wait until it holds the folder, then kill it soon after
            lock = FolderLock(run / "run.lock")
            while proc.poll() is None and lock.holder() != proc.pid:
                time.sleep(0.02)
            time.sleep(0 if kills == 0 else rng.uniform(0, 0.8))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                kills += 1
                continue
        assert proc.wait() == 0, proc.stderr.read().decode()
        break
    assert kills >= 1
    _assert_equal(_state(ref), _state(run))
    for name in ("model.pt", "model_best.pt"):
        _assert_equal(rf.read_state_dict(ref / name), rf.read_state_dict(run / name))

    def records(folder):
        logged = rf.read_log(folder)
        return [{k: v for k, v in r.items() if k not in ("time", "it_s")}
                for r in logged["train"] + logged["val"]]
    assert records(ref) == records(run)
    assert not list(run.glob(".*.part")) and not (run / "run.lock").exists()


def test_a_second_signal_during_validation_stops_at_once(tmp_path, monkeypatch,
                                                         tiny_mnist_dir):
    """The first Ctrl-C lets the step (and its validation) finish; a second one
    stops at once, and the folder keeps the last checkpoint, which resumes."""
    import signal

    out = tmp_path / "run"
    cfg = preset("smoke", val_interval=3)
    trainer = Trainer(cfg, out, tiny_mnist_dir, Options(**QUIET))
    calls = []

    def interrupted_validation(batches):
        calls.append(trainer.step)
        os.kill(os.getpid(), signal.SIGINT)  # first: finish, then stop
        os.kill(os.getpid(), signal.SIGINT)  # second: at once
        raise AssertionError("the second signal did not stop the validation")

    monkeypatch.setattr(trainer, "validate", interrupted_validation)
    monkeypatch.setattr("srvp.train._SAME_SIGNAL_S", 0.0)  # no grace: the second
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert calls == [3]
    assert rf.read_checkpoint(out)["step"] == 0  # the last one written
    assert signal.getsignal(signal.SIGINT) is before  # handler given back
    train(cfg, out, tiny_mnist_dir, resume=True, **QUIET)  # lock free: it resumes
    assert rf.read_checkpoint(out)["step"] == cfg.n_iter


def test_two_signals_at_once_count_as_one(tmp_path, monkeypatch, tiny_mnist_dir):
    """A launcher passing on the Ctrl-C that the terminal also sent: two signals
    within the grace period stop the run cleanly after its step, as one would."""
    import signal

    out = tmp_path / "run"
    cfg = preset("smoke", val_interval=3)
    trainer = Trainer(cfg, out, tiny_mnist_dir, Options(**QUIET))
    validate = trainer.validate

    def doubly_interrupted_validation(batches):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # a moment later: the same stop
        return validate(batches)

    monkeypatch.setattr(trainer, "validate", doubly_interrupted_validation)
    assert trainer.fit() == 1  # stopped early, not interrupted
    assert rf.read_checkpoint(out)["step"] == 3  # the step finished and was kept
