"""`srvp data` sub-commands are built from the dataset registry: a dataset added
at run time (one registry entry declaring its steps) gets its own command, run
by the one handler, with nothing else changed."""
from pathlib import Path

import numpy as np
import pytest

from srvp import cli
from srvp.cli import data as data_cli
from srvp.data import registry, steps
from srvp.data.steps import Step

#: Every sub-command of the README and the book, as before the registry built them.
COMMANDS = {"mmnist-testset", "mnist-download", "official-weights", "kth-download",
            "kth-convert", "kth-testset", "human-convert", "human-testset",
            "bair-download", "bair-convert"}


def _fake_convert(args):
    """A fake dataset's conversion: ``--frames`` blank frames in OUT/fake.npy."""
    raw = Path(args.data_dir) / "raw"
    if not raw.is_dir():
        raise FileNotFoundError(f"no folder {raw}")
    out = Path(args.data_dir if args.out is None else args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "fake.npy", np.zeros((args.frames, 4, 4), np.uint8))
    return out / "fake.npy", args.progress


FAKE_STEP = Step(
    "fake-convert", "convert the fake videos", "Convert DATA/raw into OUT/fake.npy.",
    (steps.data_dir(), steps.out_dir(),
     steps.option("--frames", type=int, default=3, positive=True,
                  help="frames to write (default 3)"),
     steps.NO_PROGRESS),
    run=_fake_convert,
    report=lambda result, args, seconds: [f"Wrote {result[0]} (progress "
                                          f"{result[1]})"],
    hint=lambda err: " (put the videos in DATA/raw/)")


@pytest.fixture
def fake_dataset(monkeypatch):
    """A fake dataset in the registry, whose only step is ``fake-convert``."""
    def nothing(*args):
        raise NotImplementedError

    entry = registry.Dataset("fake", "a fake dataset", nothing, nothing,
                             steps=lambda: (FAKE_STEP,))
    monkeypatch.setitem(registry.DATASETS, "fake", entry)
    return entry


def data(*argv) -> int:
    return cli.main(["data", *map(str, argv)])


def test_a_registered_dataset_gets_its_command(fake_dataset, capsys):
    with pytest.raises(SystemExit) as exit_info:
        data("--help")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "fake-convert" in out and "convert the fake videos" in out
    assert all(name in out for name in COMMANDS)  # the others are still there
    with pytest.raises(SystemExit):
        data("fake-convert", "--help")
    out = capsys.readouterr().out
    assert "Convert DATA/raw into OUT/fake.npy." in out
    assert "frames to write (default 3)" in out


def test_the_one_handler_runs_the_new_step(fake_dataset, tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert data("fake-convert", "--data-dir", tmp_path, "--frames", 5) == 0
    assert capsys.readouterr().out == f"Wrote {tmp_path / 'fake.npy'} (progress True)\n"
    assert np.load(tmp_path / "fake.npy").shape == (5, 4, 4)
    assert data("fake-convert", "--data-dir", tmp_path, "--out", tmp_path / "o",
                "--no-progress") == 0
    assert "(progress False)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected, status", [
    (["--data-dir", "{tmp}/none"], "error: no folder {tmp}/none/raw (put the", 1),
    (["--data-dir", "{tmp}", "--frames", "0"], "error: --frames 0: must be at", 2),
    (["--data-dir", "{tmp}/file"], "error: --data-dir {tmp}/file is a file", 2),
    (["--data-dir", "{tmp}", "--out", "{tmp}/file"], "error: --out {tmp}/file is", 2),
])
def test_the_one_handler_reports_errors_in_one_line(fake_dataset, tmp_path, capsys,
                                                    argv, expected, status):
    (tmp_path / "file").write_text("")
    before = sorted(tmp_path.rglob("*"))
    assert data("fake-convert", *(a.format(tmp=tmp_path) for a in argv)) == status
    err = capsys.readouterr().err
    assert err.startswith(expected.format(tmp=tmp_path)) and err.count("\n") == 1
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_still_there(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        data(name, "--help")
    assert exit_info.value.code == 0 and "--" in capsys.readouterr().out


def test_the_dataset_steps_come_in_registry_order():
    assert [s.name for s in registry.data_steps()] == [
        "mmnist-testset", "mnist-download", "kth-download", "kth-convert",
        "kth-testset", "human-convert", "human-testset", "bair-download",
        "bair-convert"]


def test_every_option_has_a_help_text():
    for step in (*registry.data_steps(), data_cli.OFFICIAL_WEIGHTS):
        for option in step.options:
            assert option.settings["help"].strip(), (step.name, option.flags)
    with pytest.raises(ValueError, match="--size: give it a help text"):
        steps.option("--size", type=int)


def test_two_datasets_cannot_declare_one_step_name(fake_dataset, monkeypatch):
    other = registry.Dataset("fake2", "another", None, None,
                             steps=lambda: (FAKE_STEP.__class__(
                                 **{**FAKE_STEP.__dict__, "help": "other"}),))
    monkeypatch.setitem(registry.DATASETS, "fake2", other)
    with pytest.raises(ValueError, match="'fake-convert'"):
        registry.data_steps()
