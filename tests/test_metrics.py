"""PSNR, SSIM and LPIPS on (T, B, C, H, W) videos: values, shapes, references."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srvp.metrics import load_lpips, lpips_distance, psnr, ssim
from srvp.metrics.lpips import ALEXNET_FILE, ALEXNET_URL
from srvp.metrics.pixel import ssim_map

skimage_metrics = pytest.importorskip("skimage.metrics")
lpips_lib = pytest.importorskip("lpips")


# --------------------------------------------------------------------------- data
def _smooth_noise(shape, generator, passes=3):
    """Low-pass noise in [0, 1] (natural-image-like local correlations)."""
    x = torch.rand(shape, generator=generator)
    flat = x.reshape(-1, 1, *shape[-2:])
    box = torch.ones(1, 1, 5, 5) / 25
    for _ in range(passes):
        flat = F.conv2d(F.pad(flat, (2, 2, 2, 2), mode="reflect"), box)
    flat = (flat - flat.amin(dim=(2, 3), keepdim=True)) / (
        flat.amax(dim=(2, 3), keepdim=True) - flat.amin(dim=(2, 3), keepdim=True)
    )
    return flat.reshape(shape)


def _shapes(shape, generator):
    """Frames with a bright square and disc on a dark background."""
    nt, bsz, _, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = torch.zeros(shape)
    for t in range(nt):
        for b in range(bsz):
            cy, cx, top, left = torch.randint(
                8, min(h, w) - 8, (4,), generator=generator
            )
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < 36).float()
            square = torch.zeros(h, w)
            square[top - 6 : top + 6, left - 6 : left + 6] = 0.7
            out[t, b] = (0.1 + torch.maximum(disc, square)).clamp(0, 1)
    return out


def _frames(kind, shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if kind == "uniform":
        return torch.rand(shape, generator=generator)
    if kind == "smooth":
        return _smooth_noise(shape, generator)
    return _shapes(shape, generator)


def _perturb(x, seed=1):
    generator = torch.Generator().manual_seed(seed)
    noise = 0.15 * torch.randn(x.shape, generator=generator)
    return (0.8 * x.roll(2, dims=-1) + 0.1 + noise).clamp(0, 1)


# --------------------------------------------------------------------------- PSNR
def test_psnr_known_values_and_channel_average():
    x = torch.zeros(3, 2, 2, 8, 8)
    x_hat = x.clone()
    x_hat[:, :, 0] += 0.1  # MSE 1e-2 -> 20 dB
    x_hat[:, :, 1] += 0.01  # MSE 1e-4 -> 40 dB
    out = psnr(x_hat, x)
    assert out.shape == (3, 2)
    torch.testing.assert_close(out, torch.full((3, 2), 30.0))


def test_psnr_is_mean_of_per_frame_values():
    x = _frames("uniform", (4, 3, 1, 16, 16))
    x_hat = _perturb(x)
    mse = ((x_hat - x) ** 2).mean(dim=(2, 3, 4))  # one channel
    torch.testing.assert_close(psnr(x_hat, x), 10 * torch.log10(1 / mse))


def test_psnr_identical_frames_is_inf():
    x = torch.rand(2, 1, 1, 8, 8)
    assert torch.isinf(psnr(x, x)).all()


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError):
        psnr(torch.rand(2, 1, 1, 8, 8), torch.rand(2, 1, 1, 8, 9))
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="SSIM window"):
        ssim(torch.rand(1, 1, 1, 8, 16), torch.rand(1, 1, 1, 8, 16))


# --------------------------------------------------------------------------- SSIM
def _skimage_ssim(x_hat, x, full=False):
    """Reference: scikit-image configured as the SRVP definition (float64)."""
    opts = {
        "gaussian_weights": True,
        "sigma": 1.5,
        "use_sample_covariance": False,
        "data_range": 1.0,
    }
    a = x_hat.double().numpy()
    b = x.double().numpy()
    if full:
        return skimage_metrics.structural_similarity(a, b, full=True, **opts)
    nt, bsz = x.shape[:2]
    out = np.empty((nt, bsz))
    for t in range(nt):
        for i in range(bsz):
            # (C, H, W) frames: per-channel SSIM averaged over channels
            out[t, i] = skimage_metrics.structural_similarity(
                a[t, i], b[t, i], channel_axis=0, **opts
            )
    return out


@pytest.mark.parametrize("kind", ["uniform", "smooth", "shapes"])
@pytest.mark.parametrize("size", [(64, 64), (40, 52)])
@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage(kind, size, channels):
    x = _frames(kind, (3, 2, channels, *size))
    x_hat = _perturb(x)
    out = ssim(x_hat, x)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out.numpy(), _skimage_ssim(x_hat, x), atol=1e-5)


def test_ssim_map_is_skimage_map_without_5_pixel_border():
    """Pixel-wise check in float64 (float32 maps differ by up to ~1e-5)."""
    x = _frames("smooth", (1, 1, 1, 64, 64))[0, 0].double()
    x_hat = _perturb(x)
    ours = ssim_map(x_hat, x)  # (1, 54, 54): valid convolution
    mean, full = _skimage_ssim(x_hat[0], x[0], full=True)
    assert ours.shape == (1, 54, 54)
    np.testing.assert_allclose(ours[0].numpy(), full[5:-5, 5:-5], atol=1e-10)
    assert abs(ours.mean().item() - mean) < 1e-10


def test_ssim_separable_equals_official_2d_window():
    """The separable window equals the normalised 11 x 11 Gaussian, conv2d form."""
    x = _frames("shapes", (2, 2, 3, 32, 32)).double()
    x_hat = _perturb(x).double()
    coords = torch.arange(11, dtype=torch.float64) - 5
    grid = -(coords.view(1, -1) ** 2 + coords.view(-1, 1) ** 2) / (2 * 1.5**2)
    kernel = grid.flatten().softmax(0).view(1, 1, 11, 11).expand(3, 1, 11, 11)
    a, b = x_hat.flatten(0, 1), x.flatten(0, 1)

    def blur(img):
        return F.conv2d(img, kernel, groups=3)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ref = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    ref = ref.mean(dim=(2, 3)).view(2, 2, 3).mean(dim=2)
    torch.testing.assert_close(ssim(x_hat, x), ref)


def test_ssim_identity_and_chunking():
    x = _frames("smooth", (5, 3, 1, 32, 32))
    torch.testing.assert_close(ssim(x, x), torch.ones(5, 3))
    x_hat = _perturb(x)
    torch.testing.assert_close(ssim(x_hat, x, chunk_size=2), ssim(x_hat, x))


# --------------------------------------------------------------------------- LPIPS
def _lpips_random(seed=0):
    torch.manual_seed(seed)
    with pytest.warns(UserWarning, match="NOT comparable"):
        return load_lpips(random_backbone=True)


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision.*")
def test_lpips_random_backbone_matches_lpips_package():
    """Same seed: our wrapper equals lpips.LPIPS on [-1, 1] RGB frames."""
    x = _frames("smooth", (3, 2, 1, 32, 32))
    x_hat = _perturb(x)
    ours = lpips_distance(x_hat, x, _lpips_random(seed=3))
    torch.manual_seed(3)
    ref_model = lpips_lib.LPIPS(
        net="alex", version="0.1", pnet_rand=True, verbose=False
    )
    a = (2 * x_hat - 1).flatten(0, 1).repeat(1, 3, 1, 1)
    b = (2 * x - 1).flatten(0, 1).repeat(1, 3, 1, 1)
    with torch.no_grad():
        ref = ref_model.eval()(a, b).view(3, 2)
    assert ours.shape == (3, 2)
    torch.testing.assert_close(ours, ref)


def test_lpips_rgb_chunking_and_identity():
    model = _lpips_random()
    x = _frames("shapes", (4, 2, 3, 32, 32))
    x_hat = _perturb(x)
    full = lpips_distance(x_hat, x, model)
    torch.testing.assert_close(lpips_distance(x_hat, x, model, chunk_size=3), full)
    assert (full > 0).all()
    assert lpips_distance(x, x, model).abs().max() < 1e-6


def _fake_alexnet_file(path):
    """Write a torchvision-format AlexNet checkpoint (features only, random)."""
    from torchvision.models import alexnet

    state = {
        k: v for k, v in alexnet().state_dict().items() if k.startswith("features")
    }
    torch.save(state, path)
    return state


def test_lpips_loads_backbone_from_path(tmp_path):
    state = _fake_alexnet_file(tmp_path / ALEXNET_FILE)
    model = load_lpips(weights=tmp_path / ALEXNET_FILE)
    torch.testing.assert_close(
        getattr(model.net.slice1, "0").weight, state["features.0.weight"]
    )
    torch.testing.assert_close(
        getattr(model.net.slice5, "10").bias, state["features.10.bias"]
    )
    assert not any(p.requires_grad for p in model.parameters())


def test_lpips_finds_backbone_in_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    state = _fake_alexnet_file(tmp_path / "hub" / "checkpoints" / ALEXNET_FILE)
    model = load_lpips()
    torch.testing.assert_close(
        getattr(model.net.slice3, "6").weight, state["features.6.weight"]
    )


def test_lpips_missing_backbone_error_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_lpips()
    message = str(err.value)
    for needle in (
        ALEXNET_FILE,
        ALEXNET_URL,
        "weights=",
        "TORCH_HOME",
        "allow_download",
    ):
        assert needle in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lpips(weights=tmp_path / "nowhere.pth")


def test_lpips_allow_download_uses_the_standard_call(tmp_path, monkeypatch):
    """Online users get the plain lpips.LPIPS(net="alex", version="0.1") call."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    class FakeLPIPS(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            calls.append(kwargs)
            self.lin = torch.nn.Linear(1, 1)

    monkeypatch.setattr(lpips_lib, "LPIPS", FakeLPIPS)
    load_lpips(allow_download=True)
    expected = {"net": "alex", "version": "0.1", "pnet_rand": False, "verbose": False}
    assert calls == [expected]


def test_lpips_rejects_two_channel_frames():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        lpips_distance(torch.rand(1, 1, 2, 16, 16), torch.rand(1, 1, 2, 16, 16), None)


def test_psnr_ssim_lpips_agree_on_ranking():
    """A closer prediction scores better on all three metrics."""
    x = _frames("shapes", (2, 2, 1, 32, 32))
    near = (x + 0.02).clamp(0, 1)
    far = _perturb(x)
    model = _lpips_random()
    assert (psnr(near, x) > psnr(far, x)).all()
    assert (ssim(near, x) > ssim(far, x)).all()
    assert (lpips_distance(near, x, model) < lpips_distance(far, x, model)).all()
    assert not math.isnan(psnr(far, x).mean().item())
