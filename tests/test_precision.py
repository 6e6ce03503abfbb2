"""``--amp auto``: the precision chosen from the CPU's flags (or the GPU), said
once, recorded in run.json, and kept on resume."""
import json

import pytest
import torch

from srvp import precision, preset
from srvp.cli import main
from srvp.devices import resolve_amp
from srvp.run_folder import read_checkpoint
from srvp.train import Options, Trainer

CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags, key="flags"):
    path = tmp_path / "cpuinfo"
    line = f"{key}\t\t: {flags}\n"
    path.write_text(f"processor\t: 0\n{line}\nprocessor\t: 1\n{line}")
    return str(path)


@pytest.mark.parametrize("flags, key, found", [
    ("fpu sse2 avx2 avx512f avx512_bf16", "flags", ("avx512_bf16",)),
    ("fpu avx512f amx_tile amx_bf16 avx512_bf16", "flags", ("amx_bf16", "avx512_bf16")),
    ("fpu sse2 avx2 avx512f avx512bw", "flags", ()),
    ("fp asimd bf16 i8mm", "Features", ("bf16",)),  # Arm
])
def test_bf16_flags_are_read_from_cpuinfo(tmp_path, flags, key, found):
    assert precision.cpu_bf16_flags(_cpuinfo(tmp_path, flags, key)) == found


def test_no_cpuinfo_means_no_bf16(tmp_path):
    assert precision.cpu_bf16_flags(str(tmp_path / "absent")) == ()


@pytest.mark.parametrize("flags, mode", [(("avx512_bf16",), "bf16"), ((), "off")])
def test_auto_picks_bf16_only_where_the_cpu_computes_it(monkeypatch, flags, mode):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    chosen, why = precision.auto_amp(CPU)
    assert chosen == mode
    assert ("natively" in why) == bool(flags)


def test_resolve_amp_names_the_choice_and_leaves_the_modes_alone(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert resolve_amp("cpu", "auto") == (
        "off", "--amp auto: off (this CPU has no bfloat16 instructions (no AMX or "
               "AVX-512 BF16): float32, faster here)")
    for mode in precision.AMP_MODES:
        assert resolve_amp("cpu", mode) == (mode, None)


def test_a_run_records_the_choice_and_resumes_with_auto(tmp_path, tiny_mnist_dir,
                                                        monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    cfg = preset("smoke")
    out = tmp_path / "run"
    Trainer(cfg, out, tiny_mnist_dir, Options(progress=False, amp="auto",
                                               max_steps=2)).fit()
    assert "--amp auto: bf16" in capsys.readouterr().err
    assert read_checkpoint(out)["options"]["amp"] == "bf16"
    # resuming with auto on the same machine is the same precision: accepted
    t = Trainer(cfg, out, tiny_mnist_dir, Options(progress=False, amp="auto",
                                                   max_steps=3), resume=True)
    assert t.opts.amp == "bf16"
    # on a machine where auto means float32, the change must be allowed
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    with pytest.raises(ValueError, match="amp"):
        Trainer(cfg, out, tiny_mnist_dir, Options(progress=False, amp="auto"),
                resume=True)


def test_the_commands_accept_auto(tmp_path, tiny_mnist_dir, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--amp", "auto", "--device", "cpu",
                 "--data-dir", str(tiny_mnist_dir), "--out", str(out),
                 "--max-steps", "1"]) == 1
    err = capsys.readouterr().err
    assert "--amp auto: off" in err and "the first is the slowest" in err
    assert json.loads((out / "run.json").read_text())["options"]["amp"] == "off"
