"""The gpu profile of book ch. 6 fetches the released KTH model and a few KTH
videos with the package's own downloads (`srvp.book.released_kth`). Offline
here: HTTP servers on 127.0.0.1 serve a tiny model of the kth preset in the
released layout and a zip of real AVI files, as KTH's server does."""
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import dead_url, write_avi

from srvp import SRVP, preset, save_experiment
from srvp import official_weights as weights
from srvp.book import released_kth
from srvp.data import kth

LEVELS = {"person21_handwaving_d1_uncomp.avi": [40] * 40,
          "person22_handwaving_d3_uncomp.avi": [200] * 40,
          "person05_handwaving_d1_uncomp.avi": [120] * 40}  # a training person


@pytest.fixture
def sources(tmp_path, serve, monkeypatch):
    root = tmp_path / "server"
    torch.manual_seed(0)
    save_experiment(SRVP(preset("kth", nf=4, nhx=8, nh_inf=8, nh_res=8)),
                    root / "kth")
    avis = tmp_path / "avis"
    avis.mkdir()
    with zipfile.ZipFile(root / "handwaving.zip", "w") as archive:
        for name, levels in LEVELS.items():
            write_avi(avis / name, levels)
            archive.write(avis / name, f"handwaving/{name}")
    server = serve(root)
    monkeypatch.setattr(weights, "AUTHORS_URL", dead_url())
    monkeypatch.setattr(weights, "MIRROR_URL", server.url)
    monkeypatch.setattr(kth, "URLS", (server.url + "{action}.zip",))
    return server


def test_released_kth_downloads_converts_and_draws_test_persons(sources, tmp_path):
    model, cfg, videos = released_kth(tmp_path / "dl", n_videos=3, seq_len=12,
                                      progress=False)
    assert cfg.dataset == "kth" and cfg.n_euler_steps == 2  # trained at dt = 1/2
    assert videos.shape == (12, 3, 1, 64, 64) and videos.dtype == torch.float32
    levels = videos.mean((0, 2, 3, 4)).mul(255).numpy()
    # only persons 21-25: the gray levels 40 and 200, never the training person's 120
    assert all(min(abs(v - 40), abs(v - 200)) < 12 for v in levels), levels
    with torch.no_grad():
        pred = model.predict(videos[: cfg.nt_cond], 2, n_euler_steps=4,
                             intermediate=True)
    assert pred.shape == (1, 8, 3, 1, 64, 64)
    asked = len(sources.requests)
    again = released_kth(tmp_path / "dl", n_videos=3, seq_len=12, progress=False)
    assert len(sources.requests) == asked  # everything was kept: no request
    torch.testing.assert_close(again[2], videos)


def test_chapter_6_gpu_cell_runs_on_the_served_files(sources, tmp_path,
                                                     monkeypatch):
    """The cell of book ch. 6 that shows the released KTH model, run as the gpu
    profile runs it (on the CPU here, on the files served above)."""
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from srvp.viz import animate, time_grid

    book = Path(__file__).resolve().parents[1] / "book"
    cell = next(c.source for c in jupytext.read(book / "06_dt_refinement.md").cells
                if c.cell_type == "code" and "released_kth(" in c.source)
    shown = []
    namespace = {"profile": "gpu", "Path": Path, "torch": torch, "np": np, "plt": plt,
                 "time_grid": time_grid, "animate": animate,
                 "device": torch.device("cpu"), "display": shown.append}
    monkeypatch.chdir(tmp_path)
    exec(compile(cell, "06_dt_refinement.md", "exec"), namespace)  # noqa: S102
    assert namespace["kth_model"] is not None, "the cell skipped the model"
    assert namespace["kth_pred"].shape[1] == 8 * 4  # 8 frames, 4 steps each
    assert len(shown) == 1 and "<script" in shown[0].data  # the animation
    assert (tmp_path / "official" / "kth_model" / "model.pt").exists()
    plt.close("all")


def test_released_kth_offline_is_an_oserror(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "AUTHORS_URL", dead_url())
    monkeypatch.setattr(weights, "MIRROR_URL", dead_url())
    with pytest.raises(OSError, match="127.0.0.1"):
        released_kth(tmp_path / "dl", progress=False)
    assert not (tmp_path / "dl" / "kth").exists()


def test_test_person_clips_needs_long_enough_test_videos(tmp_path):
    folder = tmp_path / "processed_64" / "boxing"
    folder.mkdir(parents=True)
    np.save(folder / "person21_boxing_d1.npy", np.zeros((5, 64, 64), np.uint8))
    with pytest.raises(FileNotFoundError, match="persons 21-25"):
        kth.test_person_clips(tmp_path, 2, seq_len=10)
    assert kth.test_person_clips(tmp_path, 2, seq_len=5).shape == (2, 5, 64, 64)
