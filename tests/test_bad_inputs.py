"""Bad inputs and a hostile machine, one table per class: values out of range
(NaN and infinities too) are refused before any write; a full disk is exit
code 4 and too little memory exit code 2 in every command; ``evaluate`` checks
its files first and keeps its results; ``--resume`` refuses a run changed by
hand and reports a damaged checkpoint or log without repairing it."""
import errno
import json
import math
import shutil

import pytest
import torch

from srvp import SRVP, preset, save_experiment
from srvp import run_folder as rf
from srvp.cli import evaluate as cli_evaluate
from srvp.cli import main
from srvp.train import train

QUIET = dict(progress=False)


def _run(capsys, args):
    """``main(args)`` -> (exit code, stderr), never a traceback."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return code, err


def _train_args(data, out, *extra):
    return ["train", "--preset", "smoke", "--data-dir", data, "--out", out, *extra]


def _full_disk(number=errno.ENOSPC, wrapped=False):
    """A write that fails as a full disk does: an OSError, or (``wrapped``)
    the RuntimeError that torch.save raises while handling it."""
    def write(*args, **kwargs):
        try:
            raise OSError(number, "No space left on device")
        except OSError:
            if not wrapped:
                raise
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected "
                               "pos 64 vs 0") from None
    return write


# ------------------------------------------------- 3. every value range-checked
CONFIG_BAD = {  # overrides: text of the message (field, value and range)
    "ndigits=0": (dict(ndigits=0), "ndigits=0: the digits per Moving MNIST "
                                   "video must be an integer from 1 to 10"),
    "res_gain=nan": (dict(res_gain=math.nan), "res_gain=nan: the residual "
                     "network's initial gain must be a finite number in (0, 100]"),
    "beta=nan": (dict(beta=math.nan), "beta=nan: the SVG KL weight"),
    "beta=-inf": (dict(beta=-math.inf), "beta=-inf"),
    "lr=inf": (dict(lr=math.inf), "lr=inf: the learning rate must be a finite"),
    "obs_scale=nan": (dict(obs_scale=math.nan), "obs_scale=nan"),
    "burnin<0": (dict(lr_scheduling_burnin=-20), "lr_scheduling_burnin=-20"),
    "decay<0": (dict(lr_scheduling_n_iter=-1), "lr_scheduling_n_iter=-1"),
    "no steps": (dict(lr_scheduling_burnin=0, lr_scheduling_n_iter=0),
                 "the schedule needs at least one step"),
    "batch_size huge": (dict(batch_size=10**8), "batch_size=100000000: the "
                        "training batch size must be an integer from 1 to 16,384"),
    "seq_len huge": (dict(seq_len=10**8), "seq_len=100000000"),
    "val_batch_size huge": (dict(val_batch_size=10**8), "val_batch_size=100000000"),
    "layer huge": (dict(ny=10**9), "ny=1000000000: the layer size ny"),
    "layer astronomic": (dict(nz=10**400), "nz=100000000000..."),
    "euler steps huge": (dict(n_euler_steps=10**8), "n_euler_steps=100000000"),
    "val_interval=0": (dict(val_interval=0), "val_interval=0"),
    "svg layers 0": (dict(z_dim=0), "z_dim=0: the SVG layer size"),
}


@pytest.mark.parametrize("case", list(CONFIG_BAD))
def test_config_values_are_range_checked(case):
    overrides, message = CONFIG_BAD[case]
    with pytest.raises(ValueError) as err:
        preset("smoke", **overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


TRAIN_BAD = {  # options: text of the one-line error
    "ndigits=0": (["--set", "ndigits=0"], "ndigits=0"),
    "res_gain=nan": (["--set", "res_gain=nan"], "res_gain=nan"),
    "burnin<0": (["--set", "lr_scheduling_burnin=-20"], "lr_scheduling_burnin=-20"),
    "seed huge": (["--seed", str(2**64)], "must be an integer from 0 to"),
    "val_batch_size huge": (["--set", "val_batch_size=100000000"],
                            "val_batch_size=100000000"),
}


@pytest.mark.parametrize("case", list(TRAIN_BAD))
def test_train_refuses_values_before_writing(case, tmp_path, capsys,
                                             tiny_mnist_dir):
    options, message = TRAIN_BAD[case]
    code, err = _run(capsys, _train_args(tiny_mnist_dir, tmp_path / "run", *options))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


EMPTY_OUT = {  # the command: nothing written into the current folder
    "train": ["train", "--preset", "smoke", "--data-dir", "{mnist}", "--out", ""],
    "mmnist-testset": ["data", "mmnist-testset", "--data-dir", "{mnist}", "--out",
                       "", "--num-videos", "2"],
    "official-weights": ["data", "official-weights", "--dataset", "smmnist",
                         "--out", ""],
    "evaluate": ["evaluate", "{run}", "--out", "", "--no-lpips"],
}


@pytest.mark.parametrize("case", list(EMPTY_OUT))
def test_an_empty_out_is_refused(case, tmp_path, capsys, monkeypatch,
                                 tiny_mnist_dir):
    save_experiment(SRVP(preset("smoke")), tmp_path / "xp")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    args = [a.format(mnist=tiny_mnist_dir, run=tmp_path / "xp")
            for a in EMPTY_OUT[case]]
    code, err = _run(capsys, args)
    assert code == 2 and "''" in err and "empty path" in err, err
    assert not list(here.iterdir()) and sorted(
        p.name for p in (tmp_path / "xp").iterdir()) == ["config.json", "model.pt"]


# --------------------------------- nothing saved before the data and step 1 ran
MEMORY = {  # where memory runs out: (attribute patched, its replacement)
    "first batch": ("srvp.data.batches.StepBatches.__getitem__", MemoryError),
    "first step": ("srvp.train.Trainer.train_step", MemoryError),
    "torch allocator": ("srvp.train.Trainer.train_step", RuntimeError(
        "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 99999999999 bytes")),
}


@pytest.mark.parametrize("case", list(MEMORY))
def test_out_of_memory_is_a_user_error_and_writes_nothing(case, tmp_path, capsys,
                                                          monkeypatch,
                                                          tiny_mnist_dir):
    target, error = MEMORY[case]

    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(target, fail)
    run = tmp_path / "run"
    code, err = _run(capsys, _train_args(tiny_mnist_dir, run))
    assert code == 2 and "out of memory" in err and "batch_size" in err, err
    assert not run.exists()  # nothing blocks a fresh run there
    monkeypatch.undo()
    code, err = _run(capsys, _train_args(tiny_mnist_dir, run, "--max-steps", "1"))
    assert code == 1, err


def test_a_batch_larger_than_memory_is_refused_first(tmp_path, capsys, monkeypatch,
                                                     tiny_mnist_dir):
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 100}  # 400 kB of memory
    monkeypatch.setattr("os.sysconf", lambda name: pages[name])
    code, err = _run(capsys, _train_args(tiny_mnist_dir, tmp_path / "run"))
    assert code == 2 and "batch_size x seq_len" in err and "--set" in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------- 4. a full disk: code 4
@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("wrapped", [False, True], ids=["oserror", "torch-wrapped"])
def test_train_on_a_full_disk(number, wrapped, tmp_path, capsys, monkeypatch,
                              tiny_mnist_dir):
    monkeypatch.setattr(torch, "save", _full_disk(number, wrapped))
    run = tmp_path / "run"
    code, err = _run(capsys, _train_args(tiny_mnist_dir, run, "--max-steps", "1"))
    assert code == 4 and f"while writing {run / 'checkpoint.pt'}" in err, err
    assert not list(run.glob(".*.part")) and not (run / "checkpoint.pt").exists()


DATA_FULL = {  # command: (options, what is patched to fail)
    "mmnist-testset": (["mmnist-testset", "--data-dir", "{mnist}", "--num-videos",
                        "2", "--seq-len", "4", "--out", "{tmp}/o", "--no-progress"],
                       "numpy.savez_compressed"),
}


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("case", list(DATA_FULL))
def test_data_commands_on_a_full_disk(case, number, tmp_path, capsys, monkeypatch,
                                      tiny_mnist_dir):
    options, target = DATA_FULL[case]
    monkeypatch.setattr(target, _full_disk(number))
    args = [o.format(mnist=tiny_mnist_dir, tmp=tmp_path) for o in options]
    code, err = _run(capsys, ["data", *args])
    assert code == 4 and "while writing" in err, err
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.part"))


DATA_MEMORY = {  # options: text of the error, exit code
    "seq-len huge": (["--seq-len", "100000000"], "at most 1000 frames"),
    "out of memory": ([], "out of memory"),
}


@pytest.mark.parametrize("case", list(DATA_MEMORY))
def test_mmnist_testset_too_large(case, tmp_path, capsys, monkeypatch,
                                  tiny_mnist_dir):
    options, message = DATA_MEMORY[case]

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.2 TiB for an array")
    monkeypatch.setattr("srvp.data.moving_mnist_testset.build_test_set", no_memory)
    args = ["data", "mmnist-testset", "--data-dir", str(tiny_mnist_dir), "--out",
            str(tmp_path / "o"), "--no-progress", *options]
    try:
        code, err = _run(capsys, args)
    except SystemExit as stop:  # argparse's refusal
        code, err = stop.code, capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (tmp_path / "o").exists()


def test_export_on_a_full_disk(tmp_path, capsys, monkeypatch, tiny_mnist_dir):
    monkeypatch.setattr("srvp.export.strip.write_strip", _full_disk())
    code, err = _run(capsys, ["export", "strip", "--out", tmp_path / "s.png",
                              "--n-videos", "2", "--data-dir", tiny_mnist_dir])
    assert code == 4 and "No space left" in err


# ------------------------------------- 2. evaluate: files first, results kept
@pytest.fixture
def xp(tmp_path):
    folder = tmp_path / "xp"
    save_experiment(SRVP(preset("smoke")), folder)
    return folder


def _evaluate(capsys, run, data, *options):
    return _run(capsys, ["evaluate", run, "--data-dir", data, "--n-videos", "2",
                         "--n-samples", "2", "--no-lpips", *options])


def _i3d_empty(tmp_path):
    (tmp_path / "i3d.pt").write_bytes(b"")


def _i3d_pickle(tmp_path):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "i3d.pt")


def _i3d_other_network(tmp_path):
    torch.save(SRVP(preset("smoke")).state_dict(), tmp_path / "i3d.pt")


def _config(value):
    def setup(tmp_path):
        (tmp_path / "xp" / "config.json").write_text(json.dumps(value))
    return setup


def _nan_weights(tmp_path):
    model = SRVP(preset("smoke"))
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    save_experiment(model, tmp_path / "xp")


def _huge_layer():
    cfg = preset("smoke").to_official()
    return _config({**cfg, "ny": 10**9})


EVAL_BAD = {  # case: (options, setup, text of the one-line error, exit code)
    "i3d empty": (["--i3d-weights", "{tmp}/i3d.pt"], _i3d_empty,
                  "--i3d-weights {tmp}/i3d.pt: not the I3D weights", 2),
    "i3d a pickle": (["--i3d-weights", "{tmp}/i3d.pt"], _i3d_pickle,
                     "not the I3D weights", 2),
    "i3d another network": (["--i3d-weights", "{tmp}/i3d.pt"], _i3d_other_network,
                            "not the I3D weights", 2),
    "euler steps huge": (["--n-euler-steps", "100000000"], None,
                         "n_euler_steps=100000000", 2),
    "seed huge": (["--seed", str(10**23)], None, "--seed 1000", 2),
    "seed negative": (["--seed", "-1"], None, "--seed -1", 2),
    "config null": ([], _config(None), "holds a NoneType, not the JSON object", 2),
    "config a list": ([], _config([1]), "holds a list", 2),
    "config huge layer": ([], _huge_layer(), "ny=1000000000", 2),
    "nan weights": ([], _nan_weights, "non-finite weights", 2),
}


@pytest.mark.parametrize("case", list(EVAL_BAD))
def test_evaluate_checks_its_files_first(case, xp, tmp_path, capsys, monkeypatch,
                                         tiny_mnist_dir):
    options, setup, message, status = EVAL_BAD[case]
    if setup is not None:
        setup(tmp_path)
    calls = []
    monkeypatch.setattr("srvp.evaluate.evaluate", lambda *a, **k: calls.append(1))
    code, err = _evaluate(capsys, xp, tiny_mnist_dir,
                          *(o.format(tmp=tmp_path) for o in options))
    assert code == status and message.format(tmp=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1
    assert not calls and not (xp / "results.json").exists()  # no video evaluated


def test_a_full_disk_before_the_evaluation(xp, capsys, monkeypatch,
                                           tiny_mnist_dir):
    monkeypatch.setattr("os.fsync", _full_disk())
    code, err = _evaluate(capsys, xp, tiny_mnist_dir)
    assert code == 4 and "a test write failed" in err
    assert not (xp / "results.json").exists()


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("failing", [["out"], ["out", "run"]],
                         ids=["beside the run", "temporary folder"])
def test_results_are_kept_when_the_write_fails(failing, xp, tmp_path, capsys,
                                               monkeypatch, tiny_mnist_dir):
    out = tmp_path / "elsewhere" / "r.json"
    out.parent.mkdir()
    places = {"out": out.parent, "run": xp.resolve()}
    bad = [places[p] for p in failing]

    def full_there(write):
        def write_or_fail(result, path):
            if path.parent.resolve() in bad:
                _full_disk()()
            write(result, path)
        return write_or_fail
    monkeypatch.setattr(rf, "save_results", full_there(rf.save_results))
    monkeypatch.setattr("srvp.cli.evaluate._save_report",
                        full_there(cli_evaluate._save_report))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, err = _evaluate(capsys, xp, tiny_mnist_dir, "--out", out)
    assert code == 4 and f"could not write {out}" in err
    where = xp if failing == ["out"] else tmp_path / "tmp"
    kept = list(where.glob("r-*.json"))
    assert len(kept) == 1 and str(kept[0]) in err
    assert _strict_json(kept[0])["metrics"]["psnr"]["n"] == 2
    assert not out.exists()


def test_nan_scores_are_valid_json_and_an_error(xp, capsys, monkeypatch,
                                                tiny_mnist_dir):
    predict = SRVP.predict

    def nan_predict(self, *args, **kwargs):
        return predict(self, *args, **kwargs) * math.nan
    monkeypatch.setattr(SRVP, "predict", nan_predict)
    code, err = _evaluate(capsys, xp, tiny_mnist_dir)
    assert code == 3 and "NaN" in err and "non_finite" in err
    report = _strict_json(xp / "results.json")
    assert report["metrics"]["psnr"]["mean"] is None
    assert report["non_finite"]["metrics/psnr/mean"] == "nan"
    assert report["non_finite"]["metrics/psnr/per_video"] == {"nan": 2}


# --------------------------------------------------------- 5. resume is honest
@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny_mnist_dir):
    """A smoke run stopped at step 2: copy it, don't change it."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    train(preset("smoke"), out, tiny_mnist_dir, max_steps=2, **QUIET)
    return out


def _edit_config(**changes):
    def edit(run):
        cfg = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**cfg, **changes}))
    return edit


def _edit_checkpoint(**changes):
    def edit(run):
        ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
        torch.save({**ckpt, **changes}, run / "checkpoint.pt")
    return edit


def _other_size(run):
    """A checkpoint of a larger model, its config saying so (config.json not)."""
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    big = preset("smoke", nf=16)
    torch.save({**ckpt, "model": SRVP(big).state_dict(), "config": big.to_dict()},
               run / "checkpoint.pt")


def _other_weights(run):
    """A hand-made checkpoint: the run's config, another model's weights."""
    _edit_checkpoint(model=SRVP(preset("smoke", nf=16)).state_dict())(run)


def _damaged_log(run):
    lines = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text("\n".join(["{not json", *lines]) + "\n")


RESUME_BAD = {  # case: (edit of the run, options, text of the one-line error)
    "config.json batch_size": (_edit_config(batch_size=8),
                               ["--set", "batch_size=8"], "differs from the config"),
    "config.json lr": (_edit_config(lr=1e-3), ["--set", "lr=0.001"],
                       "'lr': (0.0003, 0.001)"),
    "config.json lr, no --set": (_edit_config(lr=1e-3), [], "config.json differs"),
    "another preset's size": (_other_size, [], "'nf': (16, 8)"),
    "another model's weights": (_other_weights, [], "does not fit its config"),
    "step negative": (_edit_checkpoint(step=-1), [], "step=-1, not a step"),
    "step a string": (_edit_checkpoint(step="two"), [], "step='two'"),
    "step past the schedule": (_edit_checkpoint(step=10**6), [],
                               "past the schedule's 10 steps"),
    "best_psnr a string": (_edit_checkpoint(best_psnr="x"), [], "best_psnr='x'"),
    "damaged log": (_damaged_log, [], "line 1, is not a JSON record"),
}


@pytest.mark.parametrize("case", list(RESUME_BAD))
def test_resume_refuses_a_changed_or_damaged_run(case, stopped_run, tmp_path,
                                                 capsys, tiny_mnist_dir):
    edit, options, message = RESUME_BAD[case]
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    edit(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, err = _run(capsys, _train_args(tiny_mnist_dir, run, "--resume", *options))
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # log kept


def test_an_allowed_change_is_recorded(stopped_run, tmp_path, capsys,
                                       tiny_mnist_dir):
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    _edit_config(lr=1e-3)(run)
    args = _train_args(tiny_mnist_dir, run, "--resume", "--set", "lr=0.001",
                       "--allow-change", "lr", "--max-steps", "3")
    code, err = _run(capsys, args)
    assert code == 1, err
    history = json.loads((run / "run.json").read_text())["history"]
    assert history == [{"step": 2, "field": "lr", "old": 3e-4, "new": 1e-3}]
    ckpt = rf.read_checkpoint(run)
    assert ckpt["step"] == 3 and ckpt["config"]["lr"] == 1e-3
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 1e-3
