"""The paper's evaluation protocol: best of N samples per video and metric
(book ch. 5).

For every test video, ``n_samples`` futures are drawn; each metric is averaged
over the predicted frames of a sample, the best sample is chosen per video and
per metric, and the report gives the mean over videos with a 95% interval
(1.96 std / sqrt(n), population std, as the official ``test.py``). Two
reference predictors give context: blank frames and the last conditioning frame
repeated.
"""
from __future__ import annotations

import json
import math
from typing import Callable, Dict, Iterable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .fileio import atomic_file, atomic_write_text
from .memory import release_free_memory
from .metrics.pixel import psnr, ssim

LOWER_IS_BETTER = {"lpips"}
N_KEPT_RANDOM = 5  # random samples kept per video, as the official test.py


def frame_metrics(lpips_model=None) -> Dict[str, Callable]:
    """Metric functions ``f(x_hat, x) -> (T, B)``: PSNR, SSIM and, given a
    model from :func:`srvp.metrics.load_lpips`, LPIPS."""
    fns: Dict[str, Callable] = {"psnr": psnr, "ssim": ssim}
    if lpips_model is not None:
        from .metrics.lpips import lpips_distance

        fns["lpips"] = lambda a, b: lpips_distance(a, b, lpips_model)
    return fns


class _Selection:
    """Running best / worst sample per video and metric, over sample chunks."""

    def __init__(self, names):
        self.names = names
        self.best: Dict[str, tuple] = {}
        self.worst: Dict[str, tuple] = {}

    def update(self, name: str, frame_scores: torch.Tensor, samples: torch.Tensor):
        """``frame_scores`` (S, T, B); ``samples`` (S, T, B, C, H, W) uint8."""
        video = frame_scores.mean(1)  # (S, B)
        sign = -1.0 if name in LOWER_IS_BETTER else 1.0
        for store, pick in ((self.best, torch.argmax), (self.worst, torch.argmin)):
            idx = pick(sign * video, 0)  # (B,)
            cols = torch.arange(video.shape[1])
            # advanced indices around a slice put the video axis first
            cand = (video[idx, cols], frame_scores[idx, :, cols].T,  # (B,), (T, B)
                    samples[idx, :, cols])  # (B, T, C, H, W)
            if name not in store:
                store[name] = cand
                continue
            old = store[name]
            better = sign * cand[0] > sign * old[0]
            if store is self.worst:
                better = sign * cand[0] < sign * old[0]
            store[name] = tuple(torch.where(_bcast(better, o, dim), c, o)
                                for c, o, dim in zip(cand, old, (0, 1, 0)))


def _bcast(mask: torch.Tensor, like: torch.Tensor, dim: int) -> torch.Tensor:
    shape = [1] * like.dim()
    shape[dim] = -1
    return mask.view(shape)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def evaluate(model, batches: Iterable[torch.Tensor], nt_cond: int, nt_pred: int,
             n_samples: int = 100, dt: Optional[float] = None, lpips_model=None,
             chunk_samples: int = 20, seed: int = 1, progress: bool = True,
             device=None, keep_samples: Optional[int] = None) -> Dict:
    """Best-of-``n_samples`` evaluation of ``model`` on test ``batches``.

    Parameters
    ----------
    model : :class:`srvp.SRVP` (or any object with the same ``predict``).
    batches : iterable of test videos (T, B, C, H, W) in [0, 1], T >= nt_cond +
        nt_pred.
    nt_cond, nt_pred : conditioning and predicted frames.
    n_samples : futures per video; samples are drawn ``chunk_samples`` at a time.
    dt : Euler step of the prediction (default: the training step).
    lpips_model : a model from :func:`srvp.metrics.load_lpips`, or None.
    seed : test seed (the official protocol uses 1).
    keep_samples : keep the sample arrays of the first ``keep_samples`` videos
        only (None: all). The scores cover every video either way; the arrays
        of all 5,000 Moving MNIST test videos take about 4 GB.

    Returns
    -------
    dict with, per metric, ``per_video`` (N,) best scores and ``per_frame`` (N,
    nt_pred) scores of the best sample; reference predictors under
    ``reference``; ``samples``: uint8 arrays (N, T, C, H, W) of the best, worst
    and first random samples, the conditioning frames and the ground truth, for
    the first ``keep_samples`` videos.
    """
    torch.manual_seed(seed)
    n_kept = 0  # videos whose sample arrays are kept so far
    device = device or next(model.parameters()).device
    fns = frame_metrics(lpips_model)
    per_video = {n: [] for n in fns}
    per_frame = {n: [] for n in fns}
    refs = {r: {n: [] for n in fns} for r in ("blank", "last_frame")}
    kept = {"cond": [], "truth": [], "random": []}
    best_s, worst_s = {n: [] for n in fns}, {n: [] for n in fns}
    for x in tqdm(batches, desc="evaluation", disable=not progress):
        x = x[: nt_cond + nt_pred].to(device)
        x_cond, target = x[:nt_cond], x[nt_cond:]
        sel = _Selection(fns)
        randoms = []
        for s0 in range(0, n_samples, chunk_samples):
            pred = model.predict(x_cond, nt_pred, min(chunk_samples, n_samples - s0),
                                 dt=dt)
            pred8 = _to_uint8(pred).cpu()
            if len(randoms) < N_KEPT_RANDOM:
                randoms.append(pred8[: N_KEPT_RANDOM - len(randoms)])
            for name, fn in fns.items():
                scores = torch.stack([fn(p, target) for p in pred]).cpu()  # (S, T, B)
                sel.update(name, scores, pred8)
        k = x.shape[1] if keep_samples is None else \
            max(0, min(x.shape[1], keep_samples - n_kept))  # videos kept here
        n_kept += k
        for name in fns:  # clone(): a slice would keep the whole batch's samples
            per_video[name].append(sel.best[name][0])
            per_frame[name].append(sel.best[name][1])
            best_s[name].append(sel.best[name][2][:k].clone())
            worst_s[name].append(sel.worst[name][2][:k].clone())
        _reference_scores(refs, fns, x_cond, target)
        kept["cond"].append(_to_uint8(x_cond[:, :k]).cpu().transpose(0, 1))
        kept["truth"].append(_to_uint8(target[:, :k]).cpu().transpose(0, 1))
        kept["random"].append(torch.cat(randoms).permute(2, 0, 1, 3, 4, 5)[:k]
                              .clone())
        del pred, pred8, randoms, sel
        release_free_memory()  # else the heap grows batch after batch (srvp.memory)
    return _package(per_video, per_frame, refs, kept, best_s, worst_s,
                    dict(nt_cond=nt_cond, nt_pred=nt_pred, n_samples=n_samples,
                         dt=dt, seed=seed, lpips=lpips_model is not None))


def _reference_scores(refs, fns, x_cond, target) -> None:
    preds = {"blank": torch.zeros_like(target),
             "last_frame": x_cond[-1:].expand_as(target)}
    for ref, pred in preds.items():
        for name, fn in fns.items():
            refs[ref][name].append(fn(pred, target).mean(0).cpu())


def _package(per_video, per_frame, refs, kept, best_s, worst_s, protocol) -> Dict:
    out = {"protocol": protocol, "metrics": {}, "reference": {}, "samples": {}}
    for name in per_video:
        v = torch.cat(per_video[name]).double().numpy()
        f = torch.cat(per_frame[name], 1).T.double().numpy()  # (N, T)
        out["metrics"][name] = summarize(v) | {"per_video": v, "per_frame": f}
        out["samples"][f"{name}_best"] = torch.cat(best_s[name]).numpy()
        out["samples"][f"{name}_worst"] = torch.cat(worst_s[name]).numpy()
    for ref, scores in refs.items():
        out["reference"][ref] = {n: summarize(torch.cat(s).double().numpy())
                                 for n, s in scores.items()}
    out["samples"]["cond"] = torch.cat(kept["cond"]).numpy()
    out["samples"]["truth"] = torch.cat(kept["truth"]).numpy()
    out["samples"]["random"] = torch.cat(kept["random"]).numpy()  # (N, k, T, ...)
    return out


def add_fvd(results: Dict, i3d_model, batch_size: int = 16) -> float:
    """FVD of the official protocol, stored in ``results["fvd"]``.

    Real set: conditioning frames + ground truth; generated set: conditioning
    frames + the first random sample of each video (not the best one).
    """
    from .metrics.fvd import fvd, fvd_videos

    s = results["samples"]
    n = results["metrics"]["psnr"]["n"]
    if len(s["cond"]) != n:
        raise ValueError(f"FVD needs the samples of all {n} videos, the results keep "
                         f"{len(s['cond'])}: evaluate with keep_samples=None")
    as_video = lambda a: torch.from_numpy(a).float().div(255).transpose(0, 1)  # noqa: E731
    real, fake = fvd_videos(as_video(s["cond"]), as_video(s["truth"]),
                            as_video(s["random"][:, 0]))
    value = fvd(real, fake, model=i3d_model, batch_size=batch_size)
    results["fvd"] = {"value": float(value), "sample": "random sample 1",
                      "note": "PyTorch I3D: close to, not identical with, TF-Hub FVD"}
    return float(value)


def summarize(values: np.ndarray) -> Dict[str, float]:
    """Mean and 95% interval half-width 1.96 std / sqrt(n) (population std).

    A frame identical to its target has an infinite PSNR (as in the official
    code), and so has the mean of its video and of the whole set. The mean stays
    infinite, as the protocol defines it; the summary then also gives
    ``n_infinite`` and the mean and interval over the finite values
    (``finite_mean``, ``finite_ci95``).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    finite = values[np.isfinite(values)]
    if len(finite) == n:
        return {"mean": float(values.mean()), "ci95": _ci95(values), "n": n}
    with np.errstate(invalid="ignore"):
        out = {"mean": float(values.mean()), "ci95": float("nan"), "n": n,
               "n_infinite": int(n - len(finite))}
    if len(finite):
        out["finite_mean"] = float(finite.mean())
        out["finite_ci95"] = _ci95(finite)
    return out


def _ci95(values: np.ndarray) -> float:
    """Half-width of the 95% interval of the mean: 1.96 std / sqrt(n)."""
    return float(1.96 * values.std() / math.sqrt(len(values)))


def save_results(results: Dict, path) -> None:
    """Write the JSON report (metrics, intervals, per-video values), atomically;
    the sample arrays go to ``<path stem>_samples.npz`` beside it."""
    from pathlib import Path

    path = Path(path)
    report = {"protocol": results["protocol"], "reference": results["reference"],
              "metrics": {n: {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                              for k, v in m.items()}
                          for n, m in results["metrics"].items()}}
    for key in ("model", "fvd"):
        if key in results:
            report[key] = results[key]
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    npz = path.with_name(path.stem + "_samples.npz")
    with atomic_file(npz) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **results["samples"])


def format_table(results: Dict) -> str:
    """A text table: the model's best-of-N scores next to the references."""
    names = list(results["metrics"])
    lines = [f"{'predictor':24s}" + "".join(f"{n.upper():>20s}" for n in names)]
    rows = [(f"model (best of {results['protocol']['n_samples']})",
             results["metrics"])]
    rows += [(f"reference: {r}", m) for r, m in results["reference"].items()]
    notes = []
    for label, m in rows:
        lines.append(f"{label:24s}" + "".join(
            f"{m[n]['mean']:>12.4f} ± {m[n]['ci95']:<5.3f}" for n in names))
        notes += [f"{label}, {n.upper()}: {m[n]['n_infinite']} of {m[n]['n']} videos "
                  "have a frame identical to the truth (infinite PSNR, as in the "
                  "official code); over the others: "
                  f"{m[n].get('finite_mean', math.nan):.4f} ± "
                  f"{m[n].get('finite_ci95', math.nan):.3f}"
                  for n in names if m[n].get("n_infinite")]
    lines += notes
    if "fvd" in results:
        lines.append(f"FVD (random sample): {results['fvd']['value']:.1f}")
    return "\n".join(lines)
