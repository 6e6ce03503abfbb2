"""Fréchet distance, the I3D network (random weights only) and the FVD pipeline.

No test here uses real I3D weights: they cannot be downloaded on the build
machines. Tests named ``*_random_weights`` run a randomly initialised I3D to
check shapes and plumbing; their FVD values mean nothing.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srvp.metrics import fvd, fvd_videos, load_i3d
from srvp.metrics.fvd import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    i3d_embeddings,
    preprocess_for_i3d,
    resize_bilinear_tf1,
)
from srvp.metrics.i3d import I3D_FILE, I3D_URL, InceptionI3d

scipy_linalg = pytest.importorskip("scipy.linalg")

MIXED = ["3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c"]


def _scipy_frechet(mu_a, sigma_a, mu_b, sigma_b):
    """Reference: the usual FID formula with scipy.linalg.sqrtm."""
    covmean = scipy_linalg.sqrtm(sigma_a @ sigma_b).real
    diff = mu_a - mu_b
    return diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean)


def _random_spd(dim, rng):
    m = rng.standard_normal((dim, dim))
    return m @ m.T / dim + 0.1 * np.eye(dim)


# ------------------------------------------------------------- Fréchet distance
def test_frechet_closed_forms():
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.standard_normal(6), rng.standard_normal(6)
    var_a, var_b = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    # diagonal covariances: |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum(
        (np.sqrt(var_a) - np.sqrt(var_b)) ** 2
    )
    got = frechet_distance_from_stats(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-10)
    # proportional covariances S_b = c^2 S_a: |dmu|^2 + (1 - c)^2 tr(S_a)
    sigma = _random_spd(6, rng)
    got = frechet_distance_from_stats(mu_a, sigma, mu_b, 9 * sigma)
    assert got == pytest.approx(np.sum((mu_a - mu_b) ** 2) + 4 * np.trace(sigma))
    # same Gaussian: zero
    assert abs(frechet_distance_from_stats(mu_a, sigma, mu_a, sigma)) < 1e-10


def test_frechet_matches_scipy_on_non_commuting_covariances():
    rng = np.random.default_rng(1)
    for dim in (2, 16, 64):
        mu_a, mu_b = rng.standard_normal(dim), rng.standard_normal(dim)
        sigma_a, sigma_b = _random_spd(dim, rng), _random_spd(dim, rng)
        ref = _scipy_frechet(mu_a, sigma_a, mu_b, sigma_b)
        got = frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b)
        assert got == pytest.approx(ref, rel=1e-8)
        assert got == pytest.approx(
            frechet_distance_from_stats(mu_b, sigma_b, mu_a, sigma_a), rel=1e-8
        )


def test_frechet_from_gaussian_features():
    """Sample statistics: equal to SciPy on them, close to the population answer."""
    rng = np.random.default_rng(2)
    dim, n = 8, 20000
    mu_a, mu_b = np.zeros(dim), np.full(dim, 0.5)
    sigma_a, sigma_b = np.eye(dim), np.diag(np.linspace(0.5, 2.0, dim))
    feats_a = rng.multivariate_normal(mu_a, sigma_a, n).astype(np.float32)
    feats_b = rng.multivariate_normal(mu_b, sigma_b, n).astype(np.float32)
    got = frechet_distance(feats_a, torch.from_numpy(feats_b))
    sample_ref = _scipy_frechet(
        feats_a.astype(np.float64).mean(0),
        np.cov(feats_a.astype(np.float64), rowvar=False),
        feats_b.astype(np.float64).mean(0),
        np.cov(feats_b.astype(np.float64), rowvar=False),
    )
    assert got == pytest.approx(sample_ref, rel=1e-8)
    population = frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b)
    assert got == pytest.approx(population, rel=0.05)


def test_gaussian_stats_are_float64_and_unbiased():
    feats = torch.randn(10, 3)
    mu, sigma = gaussian_stats(feats)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(feats.double().numpy(), rowvar=False))
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))


def test_frechet_rank_deficient_self_distance_is_zero():
    """Fewer samples than dimensions (typical of small FVD sets)."""
    feats = np.random.default_rng(3).standard_normal((5, 128))
    scale = np.trace(np.cov(feats, rowvar=False))
    assert abs(frechet_distance(feats, feats)) < 1e-9 * scale
    assert frechet_distance(feats, feats + 1.0) == pytest.approx(128.0, rel=1e-6)


# ------------------------------------------------------------- preprocessing
def test_tf1_resize_known_values():
    row = torch.tensor([[0.0, 3.0, 6.0]])  # (1, 3) image
    up = resize_bilinear_tf1(row, (1, 6))  # samples at 0, .5, 1, 1.5, 2, 2.5
    torch.testing.assert_close(up, torch.tensor([[0.0, 1.5, 3.0, 4.5, 6.0, 6.0]]))
    down = resize_bilinear_tf1(torch.arange(4.0).view(1, 4), (1, 2))  # at 0, 2
    torch.testing.assert_close(down, torch.tensor([[0.0, 2.0]]))
    img = torch.rand(2, 5, 7)
    torch.testing.assert_close(resize_bilinear_tf1(img, (5, 7)), img)


def test_preprocess_for_i3d_layout_range_and_quantisation():
    video = torch.rand(9, 2, 1, 16, 16)  # (T, B, C, H, W)
    x = preprocess_for_i3d(video, size=32)
    assert x.shape == (2, 3, 9, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x[:, 0], x[:, 2])  # grayscale repeated to RGB
    levels = (preprocess_for_i3d(video, size=16) + 1) * 255 / 2  # no resampling
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        levels[:, 0].permute(1, 0, 2, 3), (video[:, :, 0] * 255).floor()
    )


def test_preprocess_torch_resize_mode():
    video = torch.rand(9, 1, 3, 16, 16)
    x = preprocess_for_i3d(video, size=40, resize="torch", quantize=False)
    ref = F.interpolate(video[:, 0] * 255, size=(40, 40), mode="bilinear")
    torch.testing.assert_close(x[0].permute(1, 0, 2, 3), 2 * ref / 255 - 1)
    with pytest.raises(ValueError):
        preprocess_for_i3d(video, resize="nearest")


# ------------------------------------------------------------- I3D network
@pytest.fixture(scope="module")
def i3d_random_weights():
    torch.manual_seed(0)
    return InceptionI3d().eval()


def _videogpt_keys():
    """Key layout of ``i3d_pretrained_400.pt`` (VideoGPT / TATS / cd-fvd)."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    units += [
        f"Mixed_{m}.{b}"
        for m in MIXED
        for b in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
    ]
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = {f"{u}.conv3d.weight" for u in units} | {
        f"{u}.bn.{p}" for u in units for p in bn
    }
    return keys | {"logits.conv3d.weight", "logits.conv3d.bias"}


def test_i3d_state_dict_matches_converted_checkpoint_format(i3d_random_weights):
    state = i3d_random_weights.state_dict()
    assert set(state) == _videogpt_keys()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_4b.b1b.conv3d.weight"].shape == (208, 96, 3, 3, 3)
    assert state["Mixed_5c.b0.conv3d.weight"].shape == (384, 832, 1, 1, 1)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)


def test_load_i3d_strict_from_converted_file(tmp_path, i3d_random_weights):
    """A plain dict without num_batches_tracked (as converted) loads strictly."""
    state = {
        k: v.clone()
        for k, v in i3d_random_weights.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    torch.save(state, tmp_path / I3D_FILE)
    model = load_i3d(tmp_path / I3D_FILE)
    for key, value in state.items():
        torch.testing.assert_close(model.state_dict()[key], value)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_i3d_forward_shapes_random_weights(i3d_random_weights):
    x = torch.rand(1, 3, 9, 224, 224) * 2 - 1
    with torch.no_grad():
        feats = i3d_random_weights.features(x)
        logits = i3d_random_weights(x)
    assert feats.shape == (1, 1024, 2, 7, 7)
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="T >= 9"):
        i3d_random_weights(x[:, :, :8])
    with pytest.raises(ValueError, match="224"):
        i3d_random_weights(torch.zeros(1, 3, 9, 160, 160))


# ------------------------------------------------------------- FVD pipeline
def _moving_square(nt=9, bsz=3, size=32, seed=0):
    """Small (T, B, 1, H, W) videos of a square moving at a random speed."""
    gen = torch.Generator().manual_seed(seed)
    video = torch.zeros(nt, bsz, 1, size, size)
    for b in range(bsz):
        y0, x0, vy, vx = torch.randint(0, 8, (4,), generator=gen).tolist()
        for t in range(nt):
            y, x = (y0 + vy * t) % (size - 8), (x0 + vx * t) % (size - 8)
            video[t, b, 0, y : y + 8, x : x + 8] = 1.0
    return video


@pytest.mark.slow
def test_fvd_pipeline_random_weights(i3d_random_weights):
    """Self-distance ~ 0 and FVD grows with a brightness shift (2 tiny videos).

    The three sets go through I3D in one batch; :func:`fvd` itself (the same
    two steps) is checked with a cheap embedder below.
    """
    real = _moving_square(bsz=2)
    sets = torch.cat([real, real * 0.8, real * 0.4], dim=1)  # (9, 6, 1, 32, 32)
    emb_real, emb_near, emb_far = i3d_embeddings(sets, i3d_random_weights).split(2)
    assert emb_real.shape == (2, 400)
    assert abs(frechet_distance(emb_real, emb_real)) < 1e-6
    near = frechet_distance(emb_real, emb_near)
    assert 0 < near < frechet_distance(emb_real, emb_far)


class _TinyEmbedder(torch.nn.Module):
    """Cheap stand-in for I3D: (b, 3, T, 224, 224) -> (b, 4)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)

    def forward(self, x):
        return self.proj(x.mean(dim=(2, 3, 4)))


def test_fvd_batching_and_protocol_sets():
    model = _TinyEmbedder()
    x_cond, x_target = torch.rand(4, 5, 1, 16, 16), torch.rand(6, 5, 1, 16, 16)
    x_sample = torch.rand(6, 5, 1, 16, 16)
    real, fake = fvd_videos(x_cond, x_target, x_sample)
    assert real.shape == fake.shape == (10, 5, 1, 16, 16)
    torch.testing.assert_close(real[:4], fake[:4])
    emb16 = i3d_embeddings(real, model)
    torch.testing.assert_close(i3d_embeddings(real, model, batch_size=2), emb16)
    expected = frechet_distance(emb16, i3d_embeddings(fake, model))
    assert fvd(real, fake, model=model, batch_size=3) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_embeddings(real[:8], model)


def test_missing_i3d_weights_error_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_i3d()
    for needle in (I3D_FILE, I3D_URL, "weights=", "TORCH_HOME", "allow_download"):
        assert needle in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_i3d(tmp_path / "missing.pt")
    video = torch.rand(9, 2, 1, 16, 16)
    with pytest.raises(FileNotFoundError, match=I3D_FILE):
        fvd(video, video)


@pytest.mark.gpu
def test_i3d_cuda_matches_cpu_random_weights(i3d_random_weights):
    x = torch.rand(2, 3, 9, 224, 224) * 2 - 1
    with torch.no_grad():
        cpu = i3d_random_weights(x)
        gpu = i3d_random_weights.to("cuda")(x.cuda()).cpu()
    i3d_random_weights.to("cpu")
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_the_i3d_download_goes_through_the_checked_path(tmp_path, monkeypatch):
    """A file that is not I3D's state dict is refused and never enters the cache
    (the download path of srvp.download: caps, timeouts, content checks)."""
    import torch

    from srvp.download import DownloadError
    from srvp.metrics import i3d

    wrong = tmp_path / "server" / i3d.I3D_FILE
    wrong.parent.mkdir()
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    cache = tmp_path / "hub" / "checkpoints" / i3d.I3D_FILE
    monkeypatch.setattr(i3d, "I3D_URL", wrong.as_uri())
    monkeypatch.setattr(i3d, "_cached_i3d", lambda: str(cache))
    with pytest.raises(DownloadError, match="not the I3D weights"):
        i3d.load_i3d(allow_download=True)
    assert not cache.exists() and not cache.parent.exists()
