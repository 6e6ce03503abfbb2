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

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import MAX_SEED, check_euler_steps
from .metrics.pixel import psnr, ssim
from .precision import AMP_MODES, autocast

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


@dataclass(frozen=True)
class Protocol:
    """What an evaluation measures: ``nt_cond`` conditioning frames, ``nt_pred``
    predicted frames, the best of ``n_samples`` futures per video, drawn with
    ``n_euler_steps`` Euler steps per frame (None: the training value) from
    the test seed ``seed``
    (the official protocol uses 1). ``amp``: ``"off"`` (float32, the paper's) or
    ``"bf16"``/``"fp16"``: the predictions run under ``torch.autocast`` in that
    precision (the same random draws, rounded to it; the scores are computed in
    float32), faster where the hardware computes it, and moving the scores
    slightly (book ch. 5)."""

    nt_cond: int
    nt_pred: int
    n_samples: int = 100
    n_euler_steps: Optional[int] = None
    seed: int = 1
    amp: str = "off"

    def __post_init__(self):
        for name in ("nt_cond", "nt_pred", "n_samples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be an "
                                 "integer of at least 1")
        if self.n_euler_steps is not None:
            check_euler_steps(self.n_euler_steps)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or \
                not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed={self.seed!r}: the test seed must be an integer "
                             f"from 0 to {MAX_SEED} (2**63 - 1)")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r}: choose {', '.join(AMP_MODES)}")


@dataclass
class EvalResult:
    """Scores and kept samples of one evaluation.

    ``metrics[name]``: the summary of :func:`summarize` plus ``per_video`` (N,)
    best scores and ``per_frame`` (N, nt_pred) scores of each video's best
    sample; ``reference[predictor][name]``: summaries of the blank and
    last-frame predictors; ``samples``: uint8 arrays (N, T, C, H, W) of the
    best and worst sample per metric (``<name>_best``, ``<name>_worst``), the
    first random samples (``random``, (N, k, T, C, H, W)), the conditioning
    frames (``cond``) and the truth (``truth``), for the kept videos; ``fvd``
    and ``model`` when added. ``result["metrics"]`` reads like the JSON report
    that :func:`srvp.run_folder.save_results` writes.
    """

    protocol: Protocol
    metrics: Dict[str, Dict]
    reference: Dict[str, Dict[str, Dict]]
    samples: Dict[str, np.ndarray]
    fvd: Optional[Dict] = None
    model: Optional[Dict] = None

    def report(self) -> Dict:
        """The JSON report: everything but the sample arrays, lists for arrays.

        Valid JSON: a non-finite score (an infinite PSNR, a NaN) is written as
        null, and ``non_finite`` then maps its place (``metrics/psnr/mean``) to
        what it was (``"inf"``, ``"nan"``; counts for a list)."""
        out = {"protocol": self._protocol(), "reference": self.reference,
               "metrics": {n: {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                               for k, v in m.items()}
                           for n, m in self.metrics.items()}}
        for key in ("model", "fvd"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        flags: Dict[str, object] = {}
        out = _finite_json(out, "", flags)
        if flags:
            out["non_finite"] = flags
        return out

    def nan_scores(self) -> List[str]:
        """The model's metrics whose mean is NaN (its weights or predictions
        held NaN); an infinite PSNR is no error (the protocol)."""
        return [n for n, m in self.metrics.items() if math.isnan(m["mean"])]

    def _protocol(self) -> Dict:
        out = {**asdict(self.protocol), "lpips": "lpips" in self.metrics}
        if out["amp"] == "off":  # float32: reports read as before the option
            del out["amp"]
        return out

    def __getitem__(self, key: str):
        if key == "protocol":
            return self._protocol()
        if key in ("metrics", "reference", "samples") or \
                (key in ("fvd", "model") and getattr(self, key) is not None):
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True


def _kind(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _finite_json(value, where: str, flags: Dict[str, object]):
    """``value`` with each non-finite float replaced by None, and its place
    recorded in ``flags`` (for a list, the counts of each kind)."""
    if isinstance(value, dict):
        return {k: _finite_json(v, f"{where}/{k}" if where else k, flags)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        counts: Counter = Counter()
        items = _finite_list(value, counts)
        if counts:
            flags[where] = dict(counts)
        return items
    if isinstance(value, float) and not math.isfinite(value):
        flags[where] = _kind(value)
        return None
    return value


def _finite_list(items, counts: Counter) -> list:
    out = []
    for v in items:
        if isinstance(v, (list, tuple)):
            v = _finite_list(v, counts)
        elif isinstance(v, float) and not math.isfinite(v):
            counts[_kind(v)] += 1
            v = None
        out.append(v)
    return out


class _Tracker:
    """One metric over one batch: the best and worst sample of every video so far.

    ``update`` takes the frame scores (S, T, B) of S samples and the samples
    (S, T, B, C, H, W) uint8; the best (worst) sample of each video is kept with
    its mean score, its frame scores (T, B) and its frames (B, T, C, H, W).
    """

    def __init__(self, higher_is_better: bool):
        self.sign = 1.0 if higher_is_better else -1.0
        self.best: Optional[Dict[str, torch.Tensor]] = None
        self.worst: Optional[Dict[str, torch.Tensor]] = None

    def update(self, frame_scores: torch.Tensor, samples: torch.Tensor) -> None:
        video = frame_scores.mean(1)  # (S, B)
        signed = self.sign * video  # higher is better
        for attr, pick, better in (("best", torch.argmax, 1.0),
                                   ("worst", torch.argmin, -1.0)):
            idx = pick(signed, 0)  # (B,)
            cols = torch.arange(video.shape[1])
            # advanced indices around a slice put the video axis first
            new = {"score": video[idx, cols],  # (B,)
                   "frames": frame_scores[idx, :, cols].T,  # (T, B)
                   "samples": samples[idx, :, cols]}  # (B, T, C, H, W)
            setattr(self, attr, self._merge(getattr(self, attr), new, better))

    def _merge(self, old, new, better: float):
        if old is None:
            return new
        take = better * self.sign * (new["score"] - old["score"]) > 0  # (B,)
        return {"score": torch.where(take, new["score"], old["score"]),
                "frames": torch.where(take[None], new["frames"], old["frames"]),
                "samples": torch.where(take.view(-1, 1, 1, 1, 1), new["samples"],
                                       old["samples"])}


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def evaluate(model, batches: Iterable[torch.Tensor], protocol: Protocol, *,
             lpips_model=None, keep_samples: Optional[int] = None,
             chunk_samples: int = 20, progress: bool = True,
             after_batch: Optional[Callable[[], object]] = None) -> EvalResult:
    """Best-of-``protocol.n_samples`` evaluation of ``model`` on test ``batches``.

    Parameters
    ----------
    model : :class:`srvp.SRVP` (or any module with the same ``predict``); the
        batches go to the device of its parameters.
    batches : iterable of test videos (T, B, C, H, W) in [0, 1], T >= nt_cond +
        nt_pred.
    protocol : frames, samples, Euler step and seed (:class:`Protocol`).
    lpips_model : a model from :func:`srvp.metrics.load_lpips`, or None.
    keep_samples : keep the sample arrays of the first ``keep_samples`` videos
        only (None: all). The scores cover every video either way; the arrays
        of all 5,000 Moving MNIST test videos take about 4 GB.
    chunk_samples : samples drawn at a time (memory, not results).
    after_batch : called after each batch (the command line's
        ``--release-memory`` hands the freed heap back there).
    """
    p = protocol
    torch.manual_seed(p.seed)
    device = next(model.parameters()).device
    fns = frame_metrics(lpips_model)
    scores = {n: {"per_video": [], "per_frame": []} for n in fns}
    refs = {r: {n: [] for n in fns} for r in ("blank", "last_frame")}
    kept: Dict[str, list] = {k: [] for k in ("cond", "truth", "random")}
    kept.update({f"{n}_{w}": [] for n in fns for w in ("best", "worst")})
    n_kept = 0
    for x in tqdm(batches, desc="evaluation", disable=not progress):
        x = x[: p.nt_cond + p.nt_pred].to(device)
        x_cond, target = x[:p.nt_cond], x[p.nt_cond:]
        trackers = {n: _Tracker(n not in LOWER_IS_BETTER) for n in fns}
        randoms = []
        for s0 in range(0, p.n_samples, chunk_samples):
            with autocast(p.amp, device):
                pred = model.predict(x_cond, p.nt_pred,
                                     min(chunk_samples, p.n_samples - s0),
                                     n_euler_steps=p.n_euler_steps)
            pred = pred.float()  # scores in float32 whatever the precision
            pred8 = _to_uint8(pred).cpu()  # (S, T, B, C, H, W)
            if len(randoms) < N_KEPT_RANDOM:
                randoms.append(pred8[: N_KEPT_RANDOM - len(randoms)])
            for name, fn in fns.items():
                frame_scores = torch.stack([fn(s, target) for s in pred]).cpu()
                trackers[name].update(frame_scores, pred8)  # (S, T, B)
        for name, tr in trackers.items():
            scores[name]["per_video"].append(tr.best["score"])
            scores[name]["per_frame"].append(tr.best["frames"])
        _reference_scores(refs, fns, x_cond, target)
        k = x.shape[1] if keep_samples is None else \
            max(0, min(x.shape[1], keep_samples - n_kept))  # videos kept here
        n_kept += k
        for name, tr in trackers.items():  # clone(): a view keeps the whole batch
            kept[f"{name}_best"].append(tr.best["samples"][:k].clone())
            kept[f"{name}_worst"].append(tr.worst["samples"][:k].clone())
        kept["cond"].append(_to_uint8(x_cond[:, :k]).cpu().transpose(0, 1))
        kept["truth"].append(_to_uint8(target[:, :k]).cpu().transpose(0, 1))
        kept["random"].append(torch.cat(randoms)[:, :, :k]  # (k, R, T, C, H, W)
                              .permute(2, 0, 1, 3, 4, 5).clone())
        del pred, pred8, randoms, trackers
        if after_batch is not None:
            after_batch()
    metrics = {}
    for name, s in scores.items():
        per_video = torch.cat(s["per_video"]).double().numpy()  # (N,)
        per_frame = torch.cat(s["per_frame"], 1).T.double().numpy()  # (N, T)
        metrics[name] = summarize(per_video) | {"per_video": per_video,
                                                "per_frame": per_frame}
    reference = {r: {n: summarize(torch.cat(v).double().numpy())
                     for n, v in per_metric.items()} for r, per_metric in refs.items()}
    samples = {k: torch.cat(v).numpy() for k, v in kept.items()}
    return EvalResult(replace(p), metrics, reference, samples)


def _reference_scores(refs, fns, x_cond, target) -> None:
    preds = {"blank": torch.zeros_like(target),
             "last_frame": x_cond[-1:].expand_as(target)}
    for ref, pred in preds.items():
        for name, fn in fns.items():
            refs[ref][name].append(fn(pred, target).mean(0).cpu())


def add_fvd(results: EvalResult, i3d_model, batch_size: int = 16) -> float:
    """FVD of the official protocol, stored in ``results.fvd``.

    Real set: conditioning frames + ground truth; generated set: conditioning
    frames + the first random sample of each video (not the best one).
    """
    from .metrics.fvd import fvd, fvd_videos

    s = results.samples
    n = results.metrics["psnr"]["n"]
    if len(s["cond"]) != n:
        raise ValueError(f"FVD needs the samples of all {n} videos, the results keep "
                         f"{len(s['cond'])}: evaluate with keep_samples=None")
    as_video = lambda a: torch.from_numpy(a).float().div(255).transpose(0, 1)  # noqa: E731
    real, fake = fvd_videos(as_video(s["cond"]), as_video(s["truth"]),
                            as_video(s["random"][:, 0]))
    value = fvd(real, fake, model=i3d_model, batch_size=batch_size)
    results.fvd = {"value": float(value), "sample": "random sample 1",
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
               "n_infinite": int(np.isinf(values).sum())}
    if np.isnan(values).any():  # not a score: the model's output held NaN
        out["n_nan"] = int(np.isnan(values).sum())
    if len(finite):
        out["finite_mean"] = float(finite.mean())
        out["finite_ci95"] = _ci95(finite)
    return out


def _ci95(values: np.ndarray) -> float:
    """Half-width of the 95% interval of the mean: 1.96 std / sqrt(n)."""
    return float(1.96 * values.std() / math.sqrt(len(values)))


def _number(value) -> float:
    """A score of a report read back: null (a non-finite one) shows as nan."""
    return math.nan if value is None else value


def format_table(results) -> str:
    """A text table: the model's best-of-N scores next to the references
    (an :class:`EvalResult` or a JSON report read back)."""
    names = list(results["metrics"])
    lines = [f"{'predictor':24s}" + "".join(f"{n.upper():>20s}" for n in names)]
    rows = [(f"model (best of {results['protocol']['n_samples']})",
             results["metrics"])]
    rows += [(f"reference: {r}", m) for r, m in results["reference"].items()]
    notes = []
    for label, m in rows:
        lines.append(f"{label:24s}" + "".join(
            f"{_number(m[n]['mean']):>12.4f} ± {_number(m[n]['ci95']):<5.3f}"
            for n in names))
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
