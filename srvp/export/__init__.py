"""Export a trained SRVP for other runtimes: ONNX pieces and the browser sampler.

``python -m srvp export onnx RUN --out DIR`` (:mod:`srvp.cli.export`) writes the
pieces of :mod:`srvp.export.pieces` with :func:`export_onnx`;
:func:`srvp.export.sampler.sample` runs them with ``onnxruntime`` exactly as
``SRVP.predict`` runs the model, and ``book/_static/sampler/sampler.js`` does
the same in a web page (book ch. 6 and 7).
"""
from .noise import GaussianStream, mulberry32
from .to_onnx import WEIGHT_FORMATS, export_onnx

__all__ = ["GaussianStream", "WEIGHT_FORMATS", "export_onnx", "mulberry32"]
