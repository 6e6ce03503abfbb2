"""The trainer: schedule, exact resume after any stop, errors, DDP on CPU."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from srvp import SRVP, devices, preset, save_experiment
from srvp.cli import main
from srvp.cli.train import parse_overrides
from srvp.devices import resolve_memory_format, resolve_workers
from srvp.fileio import atomic_file
from srvp.run_folder import read_checkpoint, read_log
from srvp.train import (
    Options,
    Trainer,
    TrainingDiverged,
    kl_weight,
    loss_config,
    lr_at,
    train,
)

SMOKE = dict(lr_scheduling_burnin=8, lr_scheduling_n_iter=4, val_interval=6)


def _cfg(**kw):
    return preset("smoke", **{**SMOKE, **kw})


def _params(path):
    return torch.load(path / "model.pt", weights_only=True)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lr_schedule_is_constant_then_linear():
    cfg = preset("smoke", lr=1.0, lr_scheduling_burnin=3, lr_scheduling_n_iter=4)
    assert [lr_at(cfg, s) for s in range(1, 9)] == [1, 1, 1, 0.75, 0.5, 0.25, 0, 0]


def test_kl_warmup_scales_the_kl_weights_then_stops():
    cfg = preset("smoke", beta_y=1.0, beta_z=2.0, kl_warmup=4)
    assert [kl_weight(cfg, s) for s in range(1, 7)] == [0.25, 0.5, 0.75, 1, 1, 1]
    early = loss_config(cfg, 2)
    assert (early.beta_y, early.beta_z, early.svg.beta) == (0.5, 1.0, cfg.svg.beta / 2)
    assert loss_config(cfg, 4) is cfg
    off = preset("smoke")  # the official loss: no warm-up
    assert off.kl_warmup == 0 and kl_weight(off, 1) == 1 and loss_config(off, 1) is off
    with pytest.raises(ValueError, match="kl_warmup=-1"):
        preset("smoke", kl_warmup=-1)


def test_kl_warmup_enters_the_logged_loss(tmp_path, tiny_mnist_dir):
    cfg = _cfg(kl_warmup=10, beta_z=2.0)
    train(cfg, tmp_path, tiny_mnist_dir, progress=False, log_interval=1, max_steps=3)
    records = read_log(tmp_path)["train"]
    assert [r["kl_weight"] for r in records] == [0.1, 0.2, 0.3]
    for r in records:  # loss = nll + w (beta_y kl_y + beta_z kl_z) + l2_res l2
        kl_part = r["loss"] - r["nll"] - cfg.l2_res * r["l2_res"]
        full = cfg.beta_y * r["kl_y"] + cfg.beta_z * r["kl_z"]
        assert full > 0.5  # large enough for the two weightings to differ
        assert kl_part == pytest.approx(r["kl_weight"] * full, abs=0.05)


def _leftovers(folder):
    """Temporary files of :func:`srvp.fileio.atomic_file` (``.NAME.XXXX.part``)."""
    return sorted(p.name for p in folder.glob(".*.part"))


def test_leftover_pattern_matches_atomic_file_temporaries(tmp_path):
    with atomic_file(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"half")
        assert _leftovers(tmp_path) == [tmp.name]  # seen while being written
    assert _leftovers(tmp_path) == [] and (tmp_path / "model.pt").exists()


def test_run_folder_layout_and_log(tmp_path, tiny_mnist_dir):
    # validation every 5 steps, and at the last step, 12, which 5 does not divide
    t = train(_cfg(val_interval=5), tmp_path, tiny_mnist_dir, progress=False,
              log_interval=2)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.pt", "model_best.pt", "checkpoint.pt",
            "log.jsonl"} <= names
    assert _leftovers(tmp_path) == []  # every write was renamed into place
    text = (tmp_path / "log.jsonl").read_text()
    records = [json.loads(ln) for ln in text.splitlines() if ln]
    assert [r["step"] for r in records if "val_psnr" in r] == [5, 10, 12]
    assert t.step == 12 and 0 < t.best_psnr < 60


def test_resume_gives_the_uninterrupted_result(tmp_path, tiny_mnist_dir):
    full, part = tmp_path / "full", tmp_path / "part"
    train(_cfg(), full, tiny_mnist_dir, progress=False)
    stopped = train(_cfg(), part, tiny_mnist_dir, progress=False, max_steps=5)
    assert stopped.step == 5
    train(_cfg(), part, tiny_mnist_dir, resume=True, progress=False)
    _assert_same(_params(full), _params(part))
    text = (part / "log.jsonl").read_text()
    steps = [json.loads(ln)["step"] for ln in text.splitlines()]
    assert steps == sorted(steps)


def _cli(out, data_dir, *extra):
    args = [sys.executable, "-m", "srvp", "train", "--preset", "smoke", "--data-dir",
            str(data_dir), "--out", str(out), "--ckpt-interval", "1"]
    for k, v in {**SMOKE, "lr_scheduling_burnin": 26}.items():  # 30 steps
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


def _wait_for_step(out, step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = out / "log.jsonl"
        if log.exists() and any(json.loads(ln).get("step", 0) >= step
                                for ln in log.read_text().splitlines()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("training did not reach step %d" % step)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stop_by_signal_then_resume(tmp_path, tiny_mnist_dir, sig):
    """SIGTERM checkpoints and exits; kill -9 loses at most the current step.
    Either way --resume ends with the weights of an uninterrupted run."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_cli(ref, tiny_mnist_dir), check=True, capture_output=True)
    proc = subprocess.Popen(_cli(out, tiny_mnist_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_step(out, 10, proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code == (1 if sig == signal.SIGTERM else -signal.SIGKILL)
    saved = read_checkpoint(out)["step"]
    assert 1 <= saved < 30
    subprocess.run(_cli(out, tiny_mnist_dir, "--resume"), check=True,
                   capture_output=True)
    _assert_same(_params(ref), _params(out))


def test_nan_stops_and_keeps_the_last_checkpoint(tmp_path, tiny_mnist_dir, monkeypatch):
    t = Trainer(_cfg(), tmp_path, tiny_mnist_dir,
                Options(progress=False, ckpt_interval=1))
    for _ in range(3):
        t.train_step(next(iter(t._loader())))
    t.save_checkpoint()
    before = _params(tmp_path)
    with torch.no_grad():
        next(t.model.dynamics.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        t.fit()
    _assert_same(before, _params(tmp_path))


def test_bf16_autocast_step_on_cpu(tmp_path, tiny_mnist_dir):
    t = Trainer(_cfg(), tmp_path, tiny_mnist_dir, Options(progress=False, amp="bf16"))
    terms = t.train_step(next(iter(t._loader())))
    assert torch.isfinite(terms.loss)


def test_memory_format_is_channels_last_on_cpu_with_the_same_numbers(tmp_path,
                                                                   tiny_mnist_dir):
    """--memory-format auto is channels-last on the CPU (the faster layout there);
    one step gives the loss and weights of the official contiguous layout up to
    float32 rounding."""
    results = {}
    for layout in ("auto", "contiguous"):
        t = Trainer(_cfg(), tmp_path / layout, tiny_mnist_dir,
                    Options(progress=False, memory_format=layout))
        # kernels whose two layouts differ (more than one input channel and pixel)
        convs = [p for p in t.model.parameters()
                 if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last)
                             == (layout == "auto") for p in convs)
        batch = next(iter(t._loader()))
        loss = t.train_step(batch).loss.item()
        results[layout] = (loss, {k: v.clone()
                                  for k, v in t.model.state_dict().items()})
    (loss_cl, w_cl), (loss_c, w_c) = results["auto"], results["contiguous"]
    assert loss_cl == pytest.approx(loss_c, rel=1e-5)
    for k in w_c:  # one Adam step of lr 1e-3 moves each weight by about 1e-3
        torch.testing.assert_close(w_cl[k], w_c[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="--memory-format"):
        Trainer(_cfg(), tmp_path / "bad", tiny_mnist_dir,
                Options(progress=False, memory_format="nhwc"))


def test_auto_memory_format_follows_the_device_and_precision():
    """auto: channels-last where it measured faster (CPUs; GPUs under mixed
    precision), the official contiguous layout for float32 on GPUs; a named
    layout is kept everywhere."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    last, contiguous = torch.channels_last, torch.contiguous_format
    for amp in ("off", "bf16", "fp16"):
        assert resolve_memory_format("auto", cpu, amp) == last
        assert resolve_memory_format("contiguous", cpu, amp) == contiguous
        assert resolve_memory_format("channels_last", gpu, amp) == last
    assert resolve_memory_format("auto", gpu, "off") == contiguous
    assert resolve_memory_format("auto", gpu, "bf16") == last
    assert resolve_memory_format("auto", gpu, "fp16") == last


def test_auto_workers_make_batches_beside_a_gpu_only(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)),
                        raising=False)
    assert resolve_workers(None, cpu, 1) == 0  # the cores train
    assert resolve_workers(None, gpu, 1) == 4
    assert resolve_workers(None, gpu, 8) == 1  # 2 cores per process, 1 drives
    assert resolve_workers(3, cpu, 1) == 3  # a number is kept
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert resolve_workers(None, gpu, 1) == 0
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert resolve_workers(None, gpu, 1) == 2


def test_the_trainer_lays_out_and_records_what_it_was_asked(tmp_path, tiny_mnist_dir,
                                                            monkeypatch):
    import srvp.train as train_module

    asked = []
    resolve = train_module.resolve_memory_format
    monkeypatch.setattr(train_module, "resolve_memory_format",
                        lambda *a: asked.append(a) or resolve(*a))
    Trainer(_cfg(), tmp_path, tiny_mnist_dir,
            Options(progress=False, amp="bf16", memory_format="contiguous"))
    assert ("contiguous", torch.device("cpu"), "bf16") in asked
    t = Trainer(_cfg(), tmp_path / "run", tiny_mnist_dir,
                Options(progress=False, max_steps=1), run_info={"argv": ["test"]})
    t.fit()
    used = json.loads((tmp_path / "run" / "run.json").read_text())["used"]
    assert used == {"device": "cpu", "memory_format": "channels_last", "workers": 0}
    assert t.memory_format == torch.channels_last


def test_workers_give_the_same_batches_and_weights(tmp_path, tiny_mnist_dir):
    """Batches made in two worker processes train the same weights as batches
    made in the training process."""
    runs = {}
    for workers in (0, 2):
        out = tmp_path / str(workers)
        train(_cfg(), out, tiny_mnist_dir, progress=False, max_steps=3,
              workers=workers)
        runs[workers] = _params(out)
    _assert_same(runs[0], runs[2])


def test_fp16_gradient_scaler_is_checkpointed_and_resumed(tmp_path, tiny_mnist_dir,
                                                          monkeypatch):
    """fp16 with a gradient scaler: the scale starts at 2^16, so the first steps
    overflow, are skipped and halve it; a resumed run restores the scale and
    ends with the uninterrupted run's weights. The commands refuse fp16 on a
    CPU (the next test); the scaler's bookkeeping is the same on every device,
    so the rule is lifted here to test it without a GPU."""
    monkeypatch.setattr(devices, "check_amp", lambda amp, device: None)
    full, part = tmp_path / "full", tmp_path / "part"
    t = train(_cfg(), full, tiny_mnist_dir, progress=False, amp="fp16")
    assert t.scaler.is_enabled() and t.scaler.get_scale() < 2.0**16
    stopped = train(_cfg(), part, tiny_mnist_dir, progress=False, max_steps=5,
                    amp="fp16")
    saved = read_checkpoint(part)["scaler"]
    assert saved["scale"] == stopped.scaler.get_scale() < 2.0**16
    train(_cfg(), part, tiny_mnist_dir, resume=True, progress=False, amp="fp16")
    _assert_same(_params(full), _params(part))


def test_fp16_is_refused_on_a_cpu_by_train_and_evaluate(tmp_path, tiny_mnist_dir,
                                                        capsys):
    """One rule for both commands and the Python API: fp16 on a CPU stops with
    one line naming the fix, before anything is written."""
    rule = ("amp=fp16 (--amp): float16 is for GPUs, slower than float32 on a CPU; "
            "use --amp bf16 or off on a CPU")
    with pytest.raises(ValueError) as err:
        Trainer(_cfg(), tmp_path / "a", tiny_mnist_dir,
                Options(progress=False, device="cpu", amp="fp16"))
    assert str(err.value) == rule
    cpu_fp16 = ["--device", "cpu", "--amp", "fp16", "--data-dir", str(tiny_mnist_dir)]
    assert main(["train", "--preset", "smoke", "--out", str(tmp_path / "b"),
                 *cpu_fp16]) == 2
    assert capsys.readouterr().err == f"error: {rule}\n"
    save_experiment(SRVP(_cfg()), tmp_path / "run")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert main(["evaluate", str(tmp_path / "run"), "--no-lpips", *cpu_fp16]) == 2
    assert capsys.readouterr().err == f"error: {rule}\n"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_wrong_options_fail_before_training(tmp_path, tiny_mnist_dir):
    with pytest.raises(ValueError, match="unknown config field"):
        parse_overrides(["n_y=3"])
    with pytest.raises(ValueError, match="type int"):
        parse_overrides(["ny=three"])
    assert parse_overrides(["skipco=true", "lr=0.1"]) == {"skipco": True, "lr": 0.1}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="MNIST"):
        Trainer(_cfg(), tmp_path / "a", empty, Options(progress=False))
    train(_cfg(), tmp_path / "b", tiny_mnist_dir, progress=False, max_steps=1)
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(_cfg(), tmp_path / "b", tiny_mnist_dir, Options(progress=False))
    with pytest.raises(ValueError, match="another config"):
        Trainer(_cfg(ny=5), tmp_path / "b", tiny_mnist_dir, Options(progress=False),
                resume=True)
    with pytest.raises(ValueError, match="no checkpoint"):
        Trainer(_cfg(), tmp_path / "c", tiny_mnist_dir, Options(progress=False),
                resume=True)
    with pytest.raises(FileNotFoundError, match="processed_64"):
        Trainer(preset("kth"), tmp_path / "d", tiny_mnist_dir, Options(progress=False))
    res = subprocess.run([sys.executable, "-m", "srvp", "train", "--preset", "nope",
                          "--out", str(tmp_path / "e")], capture_output=True, text=True)
    assert res.returncode == 2 and "invalid choice" in res.stderr
    res = subprocess.run(_cli(tmp_path / "f", tiny_mnist_dir, "--set", "beta_z=x"),
                         capture_output=True, text=True)
    assert res.returncode == 2 and "beta_z" in res.stderr


def _ddp_worker(rank, world, out, data_dir, port):
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    t = Trainer(_cfg(batch_size=4), out, data_dir,
                Options(progress=False, device="cpu", max_steps=3))
    t.fit()
    torch.save(t.model.state_dict(), out.parent / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_gloo_ranks_stay_identical(tmp_path, tiny_mnist_dir):
    import torch.multiprocessing as mp

    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, tmp_path / "run", tiny_mnist_dir, port), nprocs=2)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in a:
        if "running" in k or "num_batches" in k:
            continue  # BatchNorm statistics are per process on CPU
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_bf16_is_refused_on_a_gpu_that_only_emulates_it(monkeypatch):
    """A T4 or a V100 has no native bfloat16: the trainer says so and points to
    fp16 instead of training slower than float32 (no GPU here: the CUDA queries
    are answered as such a GPU answers them)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ValueError, match="Tesla T4 has no native bfloat16.*--amp fp16"):
        devices.check_amp("bf16", torch.device("cuda"))
    devices.check_amp("fp16", torch.device("cuda"))  # accepted
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: True)  # an A100
    devices.check_amp("bf16", torch.device("cuda"))


def test_a_run_stopped_before_any_validation_says_so(tmp_path, tiny_mnist_dir, capsys):
    """Stopped before its first validation, a run has no best PSNR to report (it
    printed "-inf dB")."""
    assert main(["train", "--preset", "smoke", "--out", str(tmp_path / "r"),
                 "--data-dir", str(tiny_mnist_dir), "--max-steps", "2",
                 "--set", "val_interval=1000"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("stopped (resume with --resume) at step 2/")
    assert "no validation yet" in last and "inf" not in last


def test_a_compiled_run_follows_the_eager_run(tmp_path, tiny_mnist_dir):
    """--compile changes how the model runs, not what it computes: the compiled
    model draws PyTorch's noise (Inductor's fallback_random), so its losses and
    weights are the eager run's up to float rounding."""
    cfg = _cfg()
    runs = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        train(cfg, tmp_path / name, tiny_mnist_dir, device="cpu", progress=False,
              log_interval=1, compile=compiled)
        runs[name] = read_log(tmp_path / name)
    eager, compiled = ([r["loss"] for r in runs[k]["train"]] for k in runs)
    assert len(eager) == cfg.n_iter
    assert compiled == pytest.approx(eager, rel=1e-5)
    a, b = _params(tmp_path / "eager"), _params(tmp_path / "compiled")
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
