"""``python -m srvp export onnx``: the exported pieces, run with onnxruntime by
srvp.export.sampler, give the frames of ``SRVP.predict`` for the same noise;
the page's files (book/_static/sampler) come from the book's model."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import SRVP, cli, load_official, preset, save_experiment
from srvp.book import weights_digest
from srvp.export import GaussianStream, export_onnx, mulberry32
from srvp.export.strip import read_strip, write_strip
from srvp.export.to_onnx import quantize_int8

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from srvp.export.sampler import Pieces, sample  # noqa: E402

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGE_MODEL = BOOK / "_static" / "sampler" / "model"


def torch_noise(shape):
    """The next draws of torch's generator, as ``SRVP.predict`` makes them."""
    return torch.randn(*shape).numpy()


def compare(model, folder, x_cond, nt_pred, n, **steps):
    """Largest |ONNX - PyTorch| per frame, from the same seed."""
    torch.manual_seed(3)
    ref = model.predict(x_cond, nt_pred, n, intermediate=True, **steps).numpy()
    torch.manual_seed(3)
    out = sample(Pieces(folder), x_cond.numpy(), nt_pred, n, torch_noise,
                 intermediate=True, **steps)
    assert out.shape == ref.shape
    return np.abs(out - ref).reshape(n, ref.shape[1], -1).max(-1)  # (n, T_out)


@pytest.fixture(scope="module")
def book_export(tmp_path_factory):
    """The book's model trained at dt = 1/2, exported with float32 weights."""
    model, _ = load_official(BOOK / "runs" / "cpu_dt2")
    folder = tmp_path_factory.mktemp("onnx")
    export_onnx(model, folder)
    return model, folder


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2, 4])
def test_float32_export_is_predict(book_export, k):
    model, folder = book_export
    x_cond = torch.rand(model.cfg.nt_cond, 2, 1, 64, 64)
    gap = compare(model, folder, x_cond, 6, 3, n_euler_steps=k)
    assert gap.max() <= 1e-4, gap.max()


@pytest.mark.slow
def test_skip_connections_and_conditioning_steps(tmp_path):
    """An untrained, narrow VGG model with skips (the KTH layout), conditioning
    frames integrated with their own number of Euler steps."""
    torch.manual_seed(0)
    model = SRVP(preset("kth", nf=4, nhx=8, nh_inf=8, nh_res=8)).eval()
    manifest = export_onnx(model, tmp_path, nt_cond=5)
    assert manifest["skips"] == ["skip0", "skip1", "skip2", "skip3"]
    gap = compare(model, tmp_path, torch.rand(5, 2, 1, 64, 64), 3, 2,
                  n_euler_steps=2, n_euler_steps_cond=1)
    assert gap.max() <= 1e-4, gap.max()


def test_int8_weights_round_to_the_nearest_step():
    w = torch.randn(6, 5, 4, 4).numpy()
    for axis in (0, 1):
        q, scale = quantize_int8(w, axis)
        assert q.dtype == np.int8 and scale.shape == (w.shape[axis],)
        shape = [1] * 4
        shape[axis] = -1
        err = np.abs(q * scale.reshape(shape) - w)
        assert (err <= scale.reshape(shape) / 2 + 1e-7).all()


def test_noise_is_the_page_noise():
    """Values printed by sampler.js's mulberry32 and gaussianStream (Node)."""
    u = mulberry32(0)
    assert [next(u) for _ in range(3)] == [0.26642920880112797, 0.00032974581699818373,
                                           0.22327202756423503]
    np.testing.assert_array_equal(
        GaussianStream(7).next((2, 2)),
        np.float32([[2.7593729496002197, -0.06805135309696198],
                    [-0.9459489583969116, 0.07814913243055344]]))


def test_strip_round_trip(tmp_path):
    videos = np.random.default_rng(0).integers(0, 256, (3, 4, 64, 64), np.uint8)
    write_strip(tmp_path / "v.png", videos)
    np.testing.assert_array_equal(read_strip(tmp_path / "v.png"), videos)


def test_page_model_is_the_book_model():
    """The files of the page come from runs/cpu_dt2, as int8; a new model.pt
    needs a new export (the command in the CHANGELOG and sampler.json)."""
    manifest = json.loads((PAGE_MODEL / "sampler.json").read_text())
    assert manifest["weights"] == "int8" and manifest["n_euler_steps"] == 2
    assert manifest["source"] == {
        "run": "cpu_dt2",
        "model_sha256": weights_digest(BOOK / "runs" / "cpu_dt2")}
    videos = read_strip(BOOK / "_static" / "sampler" / "videos.png")
    assert videos.shape[1:] == (25, 64, 64) and len(videos) >= 24
    # int8 costs at most 0.02 dB of best-of-100 PSNR on 200 test videos, measured
    # with the same noise in PyTorch and in the export (`--check 200`)
    check = manifest["check"]
    assert check["n_videos"] >= 200 and check["n_samples"] == 100
    assert abs(check["gap_db"]) <= 0.02
    gap = check["psnr_export"] - check["psnr_pytorch"]
    assert check["gap_db"] == pytest.approx(gap)


def test_cli_exports_and_documents(tmp_path, capsys):
    run = tmp_path / "run"
    save_experiment(SRVP(preset("smoke")), run)
    with pytest.raises(SystemExit):
        cli.main(["export", "onnx", "--help"])
    assert "encode.onnx" in capsys.readouterr().out
    assert cli.main(["export", "onnx", str(run), "--out", str(tmp_path / "x"),
                     "--weights", "int8"]) == 0
    assert {p.name for p in (tmp_path / "x").iterdir()} == {
        "sampler.json", "encode.onnx", "infer.onnx", "prior.onnx", "dynamics.onnx",
        "decode.onnx"}
