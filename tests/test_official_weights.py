"""``python -m srvp data official-weights``, offline: the sources are HTTP servers
on 127.0.0.1 started here, serving a tiny ``smoke`` model in the released
layout (``<model>/config.json`` + ``model.pt``), loose or packed in an archive."""
import io
import tarfile
import zipfile

import pytest
import torch
from helpers import dead_url

from srvp import SRVP, cli, load_official, preset, save_experiment
from srvp import official_weights as weights


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A released-model folder: the smoke model as ``save_experiment`` writes it."""
    folder = tmp_path_factory.mktemp("release") / "model"
    torch.manual_seed(0)
    save_experiment(SRVP(preset("smoke")), folder)
    return folder


def publish(release, root, path="mmnist/stochastic"):
    """Lay the release out under ``root`` as a server does: root/<path>/..."""
    (root / path).mkdir(parents=True)
    for name in ("config.json", "model.pt"):
        (root / path / name).write_bytes((release / name).read_bytes())
    return root


def sources(monkeypatch, authors, mirror):
    monkeypatch.setattr(weights, "AUTHORS_URL", authors)
    monkeypatch.setattr(weights, "MIRROR_URL", mirror)


def fetch(out, *extra):
    return cli.main(["data", "official-weights", "--dataset", "smmnist", "--out",
                     str(out), "--no-progress", *extra])


def same_weights(release, out):
    model, cfg = load_official(out)
    want = torch.load(release / "model.pt", weights_only=True)
    assert cfg.dataset == "smmnist"
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())


def test_download_loads_and_is_cached(release, tmp_path, serve, monkeypatch,
                                      capsys):
    authors = serve(publish(release, tmp_path / "authors"))
    sources(monkeypatch, authors.url, dead_url())
    out = tmp_path / "xp"
    assert fetch(out) == 0
    same_weights(release, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.pt"]
    assert authors.requests == ["/mmnist/stochastic/config.json",
                                "/mmnist/stochastic/model.pt"]
    assert f"from {authors.url}mmnist/stochastic/" in capsys.readouterr().out
    assert fetch(out) == 0  # cached: no request at all
    assert len(authors.requests) == 2
    assert "already there" in capsys.readouterr().out
    assert fetch(out, "--force") == 0
    assert len(authors.requests) == 4


@pytest.mark.parametrize("first", ["404", "refused", "corrupt"])
def test_falls_back_to_the_mirror(first, release, tmp_path, serve, monkeypatch,
                                  capsys):
    mirror = serve(publish(release, tmp_path / "mirror"))
    if first == "refused":
        authors_url = dead_url()
    else:
        root = tmp_path / "authors"
        if first == "corrupt":  # a truncated model.pt: it must not be accepted
            publish(release, root)
            (root / "mmnist/stochastic/model.pt").write_bytes(b"PK\x03\x04 cut")
        authors_url = serve(root).url
    sources(monkeypatch, authors_url, mirror.url)
    assert fetch(tmp_path / "xp") == 0
    same_weights(release, tmp_path / "xp")
    assert len(mirror.requests) == 2
    assert f"from {mirror.url}" in capsys.readouterr().out


def test_offline_error_is_one_line(tmp_path, monkeypatch, capsys):
    urls = dead_url(), dead_url()
    sources(monkeypatch, *urls)
    out = tmp_path / "xp"
    assert fetch(out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    for url in urls:
        assert f"{url}mmnist/stochastic/ (Connection refused)" in err
    assert "by hand" in err and "--url file:///" in err
    assert not out.exists()  # nothing written, not even the folder


def test_a_local_copy_by_url(release, tmp_path, monkeypatch):
    sources(monkeypatch, dead_url(), dead_url())
    assert fetch(tmp_path / "xp", "--url", release.as_uri() + "/") == 0
    same_weights(release, tmp_path / "xp")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("pack,suffix", [(_zip, ".zip"), (_tar, ".tar.gz")])
def test_archives(pack, suffix, release, tmp_path, serve, monkeypatch, capsys):
    files = {f"srvp/mmnist/stochastic/{n}": (release / n).read_bytes()
             for n in ("config.json", "model.pt")}
    root = tmp_path / "site"
    root.mkdir()
    pack(root / f"good{suffix}", files)
    pack(root / f"evil{suffix}", {**files, "../evil.txt": b"x"})
    site = serve(root)
    sources(monkeypatch, dead_url(), dead_url())
    assert fetch(tmp_path / "a" / "xp", "--url", f"{site.url}evil{suffix}") == 1
    err = capsys.readouterr().err
    assert "member '../evil.txt' would be written outside" in err
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (tmp_path / "a" / "xp" / "config.json").exists()
    assert fetch(tmp_path / "xp", "--url", f"{site.url}good{suffix}") == 0
    same_weights(release, tmp_path / "xp")


def test_another_model_is_not_replaced(release, tmp_path, monkeypatch, capsys):
    sources(monkeypatch, dead_url(), dead_url())
    cfg = release / "config.json"
    out = tmp_path / "xp"
    save_experiment(SRVP(preset("smoke").replace(dataset="mmnist",
                                                  deterministic=True)), out)
    before = (out / "model.pt").read_bytes()
    assert fetch(out, "--url", release.as_uri() + "/") == 1
    assert "--force" in capsys.readouterr().err
    assert (out / "model.pt").read_bytes() == before
    assert fetch(out, "--url", release.as_uri() + "/", "--force") == 0
    assert (out / "config.json").read_text() == cfg.read_text()


@pytest.mark.parametrize("best", [True, False])
def test_model_best_where_released(best, tmp_path, serve, monkeypatch):
    """KTH and Human3.6M are evaluated with model_best.pt: fetched where the
    source has it, a 404 for it is no failure."""
    model = SRVP(preset("smoke").replace(dataset="kth"))
    save_experiment(model, tmp_path / "site" / "kth")
    if best:
        save_experiment(model, tmp_path / "site" / "kth", checkpoint="model_best.pt")
    site = serve(tmp_path / "site")
    sources(monkeypatch, site.url, dead_url())
    out = tmp_path / "xp"
    assert cli.main(["data", "official-weights", "--dataset", "kth", "--out",
                     str(out), "--no-progress"]) == 0
    assert (out / "model_best.pt").is_file() == best
    assert site.requests[-1] == "/kth/model_best.pt"
    assert load_official(out)[1].dataset == "kth"
