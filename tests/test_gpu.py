"""What runs on a CUDA device: the deterministic parts give the CPU's numbers,
training runs in every precision, a run trained on a GPU is read back and
evaluated on a CPU, and evaluation on the GPU scores like the CPU's.

All marked ``gpu``: skipped without CUDA (``benchmarks/gpu_checks.sh`` runs
them with ``pytest -m gpu``). On CUDA, convolutions may use TF32 (PyTorch's
default for cuDNN), so "the CPU's numbers" means within about 1e-3."""
import pytest
import torch

from srvp import SRVP, load_official, preset
from srvp.evaluate import Protocol, evaluate
from srvp.metrics import psnr, ssim
from srvp.train import train

pytestmark = pytest.mark.gpu

SMOKE = dict(lr_scheduling_burnin=8, lr_scheduling_n_iter=4, val_interval=6)


@pytest.mark.parametrize("name", ["smmnist", "kth"])
def test_encoder_and_decoder_give_the_cpu_numbers(name):
    """The full-size presets (DCGAN and VGG, with and without skips): frames
    encoded and decoded on the GPU equal the CPU's, plain and fused."""
    torch.manual_seed(0)
    cpu = SRVP(preset(name)).eval()
    gpu = SRVP(preset(name)).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    cfg = cpu.cfg
    x = torch.rand(5, 3, cfg.nc, cfg.nx, cfg.nx)
    w = torch.randn(3, cfg.nh_inf)
    y = torch.randn(4, 3, cfg.ny)
    with torch.no_grad():
        hx, skips = cpu.encode(x)
        hx_gpu, skips_gpu = gpu.encode(x.cuda())
        torch.testing.assert_close(hx_gpu.cpu(), hx, rtol=1e-2, atol=2e-3)
        for fused in (False, True):
            frames = cpu.decode(w, y, skips, fused=fused)
            frames_gpu = gpu.decode(w.cuda(), y.cuda(), skips_gpu, fused=fused)
            assert frames_gpu.is_cuda
            torch.testing.assert_close(frames_gpu.cpu(), frames, rtol=0, atol=2e-3)


def test_metrics_give_the_cpu_numbers():
    a, b = torch.rand(20, 4, 1, 64, 64), torch.rand(20, 4, 1, 64, 64)
    torch.testing.assert_close(psnr(a.cuda(), b.cuda()).cpu(), psnr(a, b))
    torch.testing.assert_close(ssim(a.cuda(), b.cuda()).cpu(), ssim(a, b),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_a_run_trained_on_the_gpu_loads_and_predicts_on_the_cpu(tmp_path,
                                                              tiny_mnist_dir, amp):
    cfg = preset("smoke", **SMOKE)
    t = train(cfg, tmp_path, tiny_mnist_dir, progress=False, device="cuda", amp=amp)
    assert t.device == torch.device("cuda", torch.cuda.current_device())  # named
    assert t.step == cfg.n_iter
    # channels-last under mixed precision on GPUs, the official layout in float32
    assert t.memory_format == (torch.contiguous_format if amp == "off"
                               else torch.channels_last)
    assert all(p.is_cuda and torch.isfinite(p).all() for p in t.model.parameters())
    if amp == "fp16":
        assert t.scaler.is_enabled()
    model, _ = load_official(tmp_path)  # map_location="cpu" by default
    assert all(not p.is_cuda for p in model.parameters())
    gpu_weights = {k: v.cpu() for k, v in t.model.state_dict().items()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, gpu_weights[k]), k
    x = torch.rand(cfg.nt_cond, 2, cfg.nc, cfg.nx, cfg.nx)
    with torch.no_grad():
        out = model.predict(x, 3, n_samples=2)
    assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_evaluation_on_the_gpu_scores_like_the_cpu():
    """Best of 20 on the GPU and on the CPU: the noise differs (each device has
    its own random stream), so the means agree statistically, not exactly."""
    torch.manual_seed(0)
    model = SRVP(preset("smmnist")).eval()
    cfg = model.cfg
    x = torch.rand(cfg.nt_cond + 10, 16, 1, 64, 64)
    protocol = Protocol(cfg.nt_cond, 10, 20)
    cpu = evaluate(model, [x], protocol, progress=False)
    gpu = evaluate(model.cuda(), [x.cuda()], protocol, progress=False)
    for name in ("psnr", "ssim"):
        a = torch.as_tensor(cpu.metrics[name]["per_video"])
        b = torch.as_tensor(gpu.metrics[name]["per_video"])
        assert a.shape == b.shape == (16,)
        assert torch.isfinite(b).all()
        assert abs(a.mean() - b.mean()) < 0.05 * abs(a.mean()) + 0.01, name
