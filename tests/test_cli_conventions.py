"""One command-line convention: ``--data-dir`` (default ``$SRVP_MNIST_DIR``)
wherever MNIST is read, errors that name the failing command's own options, and
``evaluate`` refusing bad values in one line, exit status 2, before writing
anything."""
import urllib.error

import pytest
import torch

from srvp import SRVP, cli, preset, save_experiment
from srvp.data import mnist_idx

MNIST_ENV = mnist_idx.ENV_VAR


@pytest.fixture
def run(tmp_path):
    """A run folder holding a tiny untrained smoke model (nt_gen 6)."""
    folder = tmp_path / "run"
    save_experiment(SRVP(preset("smoke")), folder)
    return folder


def one_line_error(capsys, *expected):
    """The command's stderr: one ``error:`` line, no traceback, naming each of
    ``expected``."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], (text, err)
    return lines[0]


def evaluate(run, *options):
    return cli.main(["evaluate", str(run), "--n-videos", "2", "--n-samples", "2",
                     *options])


def test_evaluate_reads_mnist_from_the_environment(run, tiny_mnist_dir,
                                                   monkeypatch, capsys):
    monkeypatch.setenv(MNIST_ENV, str(tiny_mnist_dir))
    assert evaluate(run, "--no-lpips") == 0
    out = capsys.readouterr().out
    assert "2 test videos" in out
    # before any work, how much it will score (issue: 5,000 videos by default,
    # about 80 minutes on a CPU, without a word)
    assert out.splitlines()[0].startswith("scoring 2 test videos (the first ones), "
                                          "best of 2, ")
    assert (run / "results.json").is_file()


@pytest.mark.parametrize("command", ["evaluate", "testset"])
def test_missing_mnist_names_the_option(command, run, tmp_path, monkeypatch,
                                        capsys):
    """Without a folder or with an empty one: the hint names --data-dir and
    SRVP_MNIST_DIR, never the library's download=True; the data is checked
    before LPIPS (no weights here)."""
    monkeypatch.delenv(MNIST_ENV, raising=False)
    for extra in ([], ["--data-dir", str(tmp_path / "empty")]):
        (tmp_path / "empty").mkdir(exist_ok=True)
        if command == "evaluate":
            status = evaluate(run, *extra)
        else:
            status = cli.main(["data", "mmnist-testset", "--out",
                               str(tmp_path / "out"), *extra])
        assert status == (2 if command == "evaluate" else 1)
        line = one_line_error(capsys, "--data-dir DIR", MNIST_ENV)
        assert "download=True" not in line and "--mnist-dir" not in line
        assert "LPIPS" not in line
    assert not (run / "results.json").exists() and not (tmp_path / "out").exists()


def test_train_without_mnist_names_the_option(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(MNIST_ENV, raising=False)
    assert cli.main(["train", "--preset", "smoke", "--out", str(tmp_path / "x")]) == 2
    line = one_line_error(capsys, "--data-dir", MNIST_ENV)
    assert "download=True" not in line


def test_video_datasets_need_data_dir(tmp_path, capsys):
    folder = tmp_path / "kth"
    save_experiment(SRVP(preset("smoke").replace(dataset="kth")), folder)
    assert evaluate(folder, "--no-lpips") == 2
    one_line_error(capsys, "'kth' needs --data-dir")


def test_mmnist_testset_data_dir_only(tiny_mnist_dir, tmp_path, monkeypatch,
                                      capsys):
    monkeypatch.delenv(MNIST_ENV, raising=False)
    base = ["data", "mmnist-testset", "--num-videos", "3", "--seq-len", "4",
            "--no-progress"]
    assert cli.main([*base, "--data-dir", str(tiny_mnist_dir), "--out",
                     str(tmp_path / "a")]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # the old name is gone
        cli.main([*base, "--mnist-dir", str(tiny_mnist_dir), "--out",
                  str(tmp_path / "b")])
    assert exit_info.value.code == 2 and not (tmp_path / "b").exists()
    assert "unrecognized arguments: --mnist-dir" in capsys.readouterr().err


#: id -> (options, text the error names); {tmp} is the test's temporary folder.
BAD_VALUES = {
    "n-samples 0": (["--n-samples", "0"], "--n-samples 0"),
    "n-samples -1": (["--n-samples", "-1"], "--n-samples -1"),
    "n-videos 0": (["--n-videos", "0"], "--n-videos 0"),
    "n-videos -1": (["--n-videos", "-1"], "--n-videos -1"),
    "n-videos > test set": (["--n-videos", "1000"], "--n-videos 1000: the test"),
    "nt-cond = nt-gen": (["--nt-cond", "6"], "--nt-cond 6"),
    "nt-cond > nt-gen": (["--nt-cond", "4", "--nt-gen", "3"], "--nt-gen (3)"),
    "batch-size 0": (["--batch-size", "0"], "--batch-size 0"),
    "n-euler-steps 0": (["--n-euler-steps", "0"], "n_euler_steps=0: the Euler"),
    "out in a file": (["--out", "{tmp}/file/r.json"], "cannot write {tmp}/file/r"),
    "out a folder": (["--out", "{tmp}"], "--out {tmp} is a folder"),
    "lpips missing": (["--lpips-weights", "{tmp}/no.pth"],
                      "--lpips-weights {tmp}/no.pth: no such file"),
    "lpips garbage": (["--lpips-weights", "{tmp}/alexnet.pth"],
                      "--lpips-weights {tmp}/alexnet.pth: not torchvision's"),
    "nt-gen past the test set": (["--nt-gen", "30"], "mmnist-testset --seq-len 30"),
    "device bogus": (["--device", "bogus"], "device='bogus' (--device)"),
    "device cuda absent": (["--device", "cuda"], "CUDA is not available"),
    "i3d weights missing": (["--i3d-weights", "{tmp}/i3d.pt"],
                            "--i3d-weights {tmp}/i3d.pt: no such file"),
    "keep-samples -2": (["--keep-samples", "-2"], "--keep-samples -2"),
    "amp fp16 on the CPU": (["--device", "cpu", "--amp", "fp16"], "use --amp bf16"),
    "checkpoint missing": (["--checkpoint", "nope.pt"], "no PyTorch state dict"),
    "checkpoint garbage": (["--checkpoint", "bad.pt"], "truncated or damaged"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_evaluate_refuses_bad_values(case, run, tiny_mnist_dir, tmp_path, capsys,
                                     monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (run / "bad.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "alexnet.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "file").write_text("")
    options, expected = BAD_VALUES[case]
    options = [o.format(tmp=tmp_path) for o in options]
    before = sorted(p.name for p in run.iterdir())
    lpips = [] if case.startswith("lpips") else ["--no-lpips"]
    status = evaluate(run, "--data-dir", str(tiny_mnist_dir), *lpips, *options)
    assert status == 2
    one_line_error(capsys, expected.format(tmp=tmp_path))
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    assert not list(tmp_path.rglob("r.json"))


def test_offline_lpips_says_how_to_go_on(run, tiny_mnist_dir, tmp_path,
                                         monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached AlexNet
    assert evaluate(run, "--data-dir", str(tiny_mnist_dir)) == 2
    one_line_error(capsys, "alexnet-owt-7be5be79.pth", "--lpips-weights PATH",
                   "--no-lpips")

    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError("Name or service not known"))

    monkeypatch.setattr("srvp.metrics.lpips.load_lpips", offline)
    assert evaluate(run, "--data-dir", str(tiny_mnist_dir), "--lpips-download") == 2
    one_line_error(capsys, "could not download", "--lpips-weights PATH",
                   "--no-lpips")
    assert not (run / "results.json").exists()


DATA_BAD = {  # case: (arguments, text of the one-line error, exit status)
    "mmnist num-videos 0": (["mmnist-testset", "--data-dir", "{mnist}", "--num-videos",
                             "0", "--out", "{tmp}/o"], "--num-videos 0", 2),
    "mmnist seq-len -1": (["mmnist-testset", "--data-dir", "{mnist}", "--seq-len",
                           "-1", "--out", "{tmp}/o"], "--seq-len -1", 2),
    "mmnist out under a file": (["mmnist-testset", "--data-dir", "{mnist}", "--out",
                                 "{tmp}/file/o"], "is a file, not a folder", 2),
    "mmnist data-dir a file": (["mmnist-testset", "--data-dir", "{tmp}/file", "--out",
                                "{tmp}/o"], "--data-dir {tmp}/file is a file", 2),
    "mmnist data-dir missing": (["mmnist-testset", "--data-dir", "{tmp}/none",
                                 "--out", "{tmp}/o"], "mnist-download", 1),
    "mmnist no digits": (["mmnist-testset", "--data-dir", "{tmp}/empty", "--out",
                          "{tmp}/o"], "not found in", 1),
    "mnist-download out a file": (["mnist-download", "--out", "{tmp}/file"],
                                  "--out {tmp}/file is a file", 2),
    "weights out a file": (["official-weights", "--dataset", "kth", "--out",
                            "{tmp}/file"], "--out {tmp}/file is a file", 2),
    "kth-download out under a file": (["kth-download", "--out", "{tmp}/file/kth"],
                                      "is a file, not a folder", 2),
    "kth-convert no data": (["kth-convert", "--data-dir", "{tmp}/none"],
                            "kth-download", 1),
    "kth-convert image-size 0": (["kth-convert", "--data-dir", "{tmp}/empty",
                                  "--image-size", "0"], "--image-size 0", 2),
    "kth-convert no videos": (["kth-convert", "--data-dir", "{tmp}/empty"],
                              "raw", 1),
    "kth-testset size 0": (["kth-testset", "--data-dir", "{tmp}/empty", "--size",
                            "0"], "--size 0", 2),
    "kth-testset not converted": (["kth-testset", "--data-dir", "{tmp}/empty"],
                                  "kth-convert", 1),
    "human-testset no data": (["human-testset", "--data-dir", "{tmp}/none"],
                              "{tmp}/none", 1),
    "human-convert no data": (["human-convert", "--data-dir", "{tmp}/file"],
                              "is a file", 2),
    "bair-convert out a file": (["bair-convert", "--data-dir", "{tmp}/empty",
                                 "--out", "{tmp}/file"], "is a file, not a folder", 2),
    "bair-download out a file": (["bair-download", "--out", "{tmp}/file"],
                                 "is a file, not a folder", 2),
}


@pytest.mark.parametrize("case", list(DATA_BAD))
def test_data_commands_refuse_bad_input_first(case, tiny_mnist_dir, tmp_path,
                                              capsys):
    """Every `data` command checks its counts, data folder and output before any
    work: one line, no traceback, nothing written."""
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    options, expected, status = DATA_BAD[case]
    fill = {"tmp": tmp_path, "mnist": tiny_mnist_dir}
    before = sorted(tmp_path.rglob("*"))
    code = cli.main(["data", *(o.format(**fill) for o in options)])
    assert code == status
    one_line_error(capsys, expected.format(**fill))
    assert sorted(tmp_path.rglob("*")) == before  # nothing written

