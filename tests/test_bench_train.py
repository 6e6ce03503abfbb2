"""FLOPs per training step (``srvp.bench.step_gflop``) and the GPU peaks of
benchmarks/bench_train.py."""
import importlib.util
from pathlib import Path

import pytest
import torch

from srvp import preset
from srvp.bench import gflop, step_gflop
from srvp.model_registry import build_model, compute_loss

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
spec = importlib.util.spec_from_file_location("bench_train", PATH)
bench_train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_train)


def test_step_flops_on_the_meta_device_equal_a_real_step():
    """The count on shapes alone is the count of a step computed on the CPU (to
    within 0.1 %: the meta kernels' backward differs by a few thousand FLOPs)."""
    cfg = preset("smoke")
    model = build_model(cfg)
    x = torch.rand(cfg.seq_len, 3, cfg.nc, cfg.nx, cfg.nx)
    real = gflop(lambda: compute_loss(model(x), x, cfg).loss.backward())
    assert real > 0
    assert step_gflop(cfg, 3) == pytest.approx(real, rel=1e-3)


def test_a_model_that_reads_values_is_counted_on_the_cpu():
    cfg = preset("svg", seq_len=6, nf=8)
    assert step_gflop(cfg, 2) > 0


def test_flops_grow_with_the_batch():
    cfg = preset("smoke")
    one, four = step_gflop(cfg, 1), step_gflop(cfg, 4)
    assert four == pytest.approx(4 * one, rel=0.05)


@pytest.mark.parametrize("name, amp, peak", [
    ("NVIDIA H200", "off", 494.7), ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
    ("NVIDIA H100 PCIe", "off", 378.0), ("NVIDIA A100-SXM4-80GB", "fp16", 312.0),
    ("Tesla T4", "off", None)])
def test_peaks_by_device_name(name, amp, peak):
    assert bench_train.peak_tflops(name, amp) == peak
