"""Baselines the paper compares SRVP with, on the same data and evaluation.

:class:`SVG` is SVG-LP (Denton & Fergus, 2018), the baseline of every table.
"""
from .svg import SVG, SVGLoss, SVGOutput, svg_loss

__all__ = ["SVG", "SVGLoss", "SVGOutput", "svg_loss"]
