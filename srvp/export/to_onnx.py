"""Write the pieces of :mod:`srvp.export.pieces` as ONNX files (book ch. 6).

``export_onnx(model, out)`` writes ``encode.onnx``, ``infer.onnx``,
``prior.onnx``, ``dynamics.onnx``, ``decode.onnx`` and ``sampler.json`` (sizes,
input and output names, the weight format). Weights are float32, or int8 with
one scale per output channel (``weights="int8"``: a quarter of the size; each
weight matrix is stored as int8 and turned back into float32 by a ``Cast``
and a ``Mul``, so every operation still computes in float32).
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from ..model import SRVP
from .pieces import pieces, skip_names

#: Format written in ``sampler.json``; readers check it.
FORMAT = "srvp-onnx-sampler/1"
WEIGHT_FORMATS = ("float32", "int8")
OPSET = 17
#: Weight tensors with fewer values stay float32 (biases, BatchNorm folds).
MIN_QUANTIZED = 1024


def _signature(model: SRVP, nt_cond: int) -> Dict[str, Tuple[tuple, list, list, dict]]:
    """Per piece: example inputs, input names, output names, dynamic axes."""
    cfg, b = model.cfg, 2  # two videos: the batch axis stays dynamic
    skips = skip_names(model)
    with torch.no_grad():
        x = torch.rand(nt_cond, b, cfg.nc, cfg.nx, cfg.nx)
        hx, *skip = pieces(model)["encode"](x)
        _, w, _ = pieces(model)["infer"](hx)
    y, z = torch.zeros(b, cfg.ny), torch.zeros(b, cfg.nz)
    tb, bb = {0: "T", 1: "B"}, {0: "B"}
    skip_axes = {s: bb for s in skips}
    return {
        "encode": ((x,), ["x"], ["hx", *skips],
                   {"x": tb, "hx": tb, **skip_axes}),
        "infer": ((hx,), ["hx"], ["q_y1", "w", "q_z"],
                  {"hx": tb, "q_y1": bb, "w": bb, "q_z": tb}),
        "prior": ((y,), ["y"], ["p_z"], {"y": bb, "p_z": bb}),
        "dynamics": ((y, z), ["y", "z"], ["f"], {"y": bb, "z": bb, "f": bb}),
        "decode": ((w, y[None].expand(3, -1, -1), *skip), ["w", "y", *skips],
                   ["x_hat"], {"w": bb, "y": tb, "x_hat": tb, **skip_axes}),
    }


def _to_proto(module: torch.nn.Module, args, names, outputs, axes):
    """One piece as an ``onnx.ModelProto`` (TorchScript exporter, eval mode)."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(module, args, buffer, input_names=names,
                          output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(model: SRVP, out, weights: str = "float32",
                nt_cond: int | None = None, source: Dict | None = None) -> Dict:
    """Write the five pieces of ``model`` and ``sampler.json`` into ``out``.

    Parameters
    ----------
    model : a trained SRVP (``cfg.model == "srvp"``).
    out : folder, created if needed.
    weights : ``"float32"`` or ``"int8"`` (see the module docstring).
    nt_cond : conditioning frames the sampler uses (default ``cfg.nt_cond``).
    source : what to record about the weights (run folder, digest).

    Returns
    -------
    The manifest written to ``sampler.json``.
    """
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights={weights!r}: choose one of {WEIGHT_FORMATS}")
    cfg = model.cfg
    nt_cond = cfg.nt_cond if nt_cond is None else nt_cond
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    modules, files = pieces(model), {}
    for name, (args, names, outputs, axes) in _signature(model, nt_cond).items():
        proto = _to_proto(modules[name], args, names, outputs, axes)
        if weights == "int8":
            proto = quantize_weights(proto)
        (out / f"{name}.onnx").write_bytes(proto.SerializeToString())
        files[name] = {"file": f"{name}.onnx", "inputs": names, "outputs": outputs}
    manifest = _manifest(model, nt_cond, weights, files, source)
    (out / "sampler.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _manifest(model: SRVP, nt_cond: int, weights: str, files: Dict,
              source: Dict | None) -> Dict:
    cfg = model.cfg
    return {"format": FORMAT, "weights": weights, "nc": cfg.nc, "nx": cfg.nx,
            "ny": cfg.ny, "nz": cfg.nz, "nw": model.nw, "nt_inf": cfg.nt_inf,
            "nt_cond": nt_cond, "nt_pred": cfg.nt_gen - nt_cond,
            "n_euler_steps": cfg.n_euler_steps, "dynamics": cfg.dynamics,
            "skips": skip_names(model), "pieces": files, "source": source or {}}


# ------------------------------------------------------------ int8 weights
def _weight_axis(graph, name: str) -> int | None:
    """The output-channel axis of initializer ``name`` for its single consumer,
    or None when it is not the weight of a Conv, ConvTranspose, Gemm, MatMul or
    LSTM (then it stays float32)."""
    users = [(n, list(n.input).index(name)) for n in graph.node if name in n.input]
    if len(users) != 1:
        return None
    node, slot = users[0]
    if node.op_type == "Conv" and slot == 1:
        return 0  # (O, I, kh, kw)
    if node.op_type == "ConvTranspose" and slot == 1:
        return 1  # (I, O, kh, kw)
    if node.op_type == "Gemm" and slot == 1:
        trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        return 0 if trans_b else 1
    if node.op_type == "MatMul" and slot == 1:
        return 1  # (K, N)
    if node.op_type == "LSTM" and slot in (1, 2):
        return 1  # (1, 4 H, I) and (1, 4 H, H)
    return None


def quantize_int8(w: np.ndarray, axis: int) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per index of ``axis``: ``w ≈ q * scale``.

    Returns ``q`` (int8, the shape of ``w``) and ``scale`` (float32,
    ``(w.shape[axis],)``)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = np.abs(moved).max(1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def quantize_weights(proto):
    """``proto`` with each large weight stored as int8 and restored in float32
    by ``Cast`` and ``Mul`` (one scale per output channel).

    Not ``DequantizeLinear``: runtimes fuse that node with the MatMul or
    convolution after it into integer kernels, which round differently from
    one runtime to the next; a Cast and a Mul of constants fold into the same
    float32 weights everywhere.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph, kept, nodes = proto.graph, [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        axis = _weight_axis(graph, init.name) if w.dtype == np.float32 else None
        if axis is None or w.size < MIN_QUANTIZED:
            kept.append(init)
            continue
        q, scale = quantize_int8(w, axis)
        shape = [1] * w.ndim
        shape[axis] = -1
        name = init.name
        kept += [numpy_helper.from_array(q, name + "_q"),
                 numpy_helper.from_array(scale.reshape(shape), name + "_scale")]
        nodes += [helper.make_node("Cast", [name + "_q"], [name + "_f"],
                                   to=TensorProto.FLOAT),
                  helper.make_node("Mul", [name + "_f", name + "_scale"], [name])]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + body)
    onnx.checker.check_model(proto)
    return proto
