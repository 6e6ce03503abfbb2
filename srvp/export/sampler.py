"""The sampling loop of :meth:`SRVP.predict` over the exported ONNX pieces.

This is the Python twin of ``book/_static/sampler/sampler.js``: the same steps in
the same order, with the noise passed in (``noise(shape)`` returns standard
normal float32 numbers), so that tests can run the exported files with the noise
of :func:`torch.randn` (to compare with ``SRVP.predict``) or of
:class:`srvp.export.noise.GaussianStream` (to compare with the page).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

Noise = Callable[[Sequence[int]], np.ndarray]


class Pieces:
    """The ONNX pieces of an export folder, each callable with numpy arrays.

    ``pieces.encode(x=...)`` returns the outputs in the order of
    ``sampler.json``; ``pieces.manifest`` is that file."""

    def __init__(self, folder, threads: int = 1):
        import onnxruntime as ort

        folder = Path(folder)
        self.manifest = json.loads((folder / "sampler.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.sessions = {
            name: ort.InferenceSession(str(folder / spec["file"]), options,
                                       providers=["CPUExecutionProvider"])
            for name, spec in self.manifest["pieces"].items()}

    def run(self, name: str, **inputs: np.ndarray) -> List[np.ndarray]:
        return self.sessions[name].run(None, inputs)

    def __getattr__(self, name: str):
        if name in self.__dict__.get("sessions", {}):
            return lambda **inputs: self.run(name, **inputs)
        raise AttributeError(name)


def normal_scale(raw: np.ndarray) -> np.ndarray:
    """softplus(raw) + 1e-8, as :func:`srvp.model.normal_scale`."""
    return (np.logaddexp(0, raw) + 1e-8).astype(np.float32)


def rsample_normal(params: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """loc + scale * eps from ``params = [loc, raw_scale]`` (.., 2 n)."""
    loc, raw = np.split(params, 2, -1)
    return loc + normal_scale(raw) * eps


def residual_step(pieces: Pieces, y_t: np.ndarray, z_tp1: np.ndarray,
                  dt: float) -> np.ndarray:
    """One Euler step y_t + dt f(y_t, z_t+1), as :meth:`SRVP._residual_step`."""
    (out,) = pieces.dynamics(y=y_t, z=z_tp1)
    if pieces.manifest["dynamics"] == "direct":
        return out
    return y_t + np.float32(dt) * out


def condition(pieces: Pieces, x_cond: np.ndarray) -> Dict[str, np.ndarray]:
    """Encode conditioning frames (T_cond, B, C, H, W): ``q_y1`` (B, 2 ny),
    ``w`` (B, nw), ``q_z`` (T_cond - 1, B, 2 nz) and the skips."""
    hx, *skips = pieces.encode(x=x_cond.astype(np.float32))
    q_y1, w, q_z = pieces.infer(hx=hx)
    return {"q_y1": q_y1, "w": w, "q_z": q_z, "skips": skips}


def sample(pieces: Pieces, x_cond: np.ndarray, nt_pred: int, n_samples: int,
           noise: Noise, n_euler_steps: Optional[int] = None,
           n_euler_steps_cond: Optional[int] = None, intermediate: bool = False,
           x_content: Optional[np.ndarray] = None) -> np.ndarray:
    """``n_samples`` futures of ``nt_pred`` frames, as :meth:`SRVP.predict`.

    Noise is drawn as in ``predict``: y_1 (n B, ny), then one z (n B, nz) per
    frame interval, samples stacked sample-major. ``x_content``: frames of other
    videos (T', B, C, H, W) whose content w (and skips) draw the futures
    (a content swap, book ch. 7).

    Returns
    -------
    array (n_samples, T_out, B, C, H, W), T_out = nt_pred, or nt_pred K with
    ``intermediate``.
    """
    m = pieces.manifest
    k_pred = n_euler_steps or m["n_euler_steps"]
    k_cond = n_euler_steps_cond or m["n_euler_steps"]
    nt_cond, bsz = x_cond.shape[:2]
    cond = condition(pieces, x_cond)
    drawn = cond if x_content is None else condition(pieces, x_content)
    n_obs = nt_cond  # observed frames: q(z) drives their transitions
    y = rsample_normal(np.tile(cond["q_y1"], (n_samples, 1)),
                       noise((n_samples * bsz, m["ny"])))
    ys = []
    for t in range(nt_cond + nt_pred - 1):
        observed = t + 1 < n_obs
        params = (np.tile(cond["q_z"][t], (n_samples, 1)) if observed
                  else pieces.prior(y=y)[0])
        z = rsample_normal(params, noise((n_samples * bsz, m["nz"])))
        k = k_cond if observed else k_pred
        for j in range(k):
            y = residual_step(pieces, y, z, 1.0 / k)
            if not observed and (intermediate or j == k - 1):
                ys.append(y)
    skips = [np.tile(s, (n_samples, 1, 1, 1)) for s in drawn["skips"]]
    names = {f"skip{i}": s for i, s in enumerate(skips)}
    (x,) = pieces.decode(w=np.tile(drawn["w"], (n_samples, 1)), y=np.stack(ys),
                         **names)
    x = x.reshape(len(ys), n_samples, bsz, *x.shape[2:]).transpose(1, 0, 2, 3, 4, 5)
    return np.clip(x, 0, 1)
