"""Stochastic Latent Residual Video Prediction (SRVP, ICML 2020), in PyTorch.

>>> from srvp import SRVP, Config, preset, load_official
>>> model = SRVP(preset("smoke"))
"""
from .config import PRESETS, Config, preset
from .loss import Loss, elbo_loss
from .model import SRVP, Output
from .run_folder import load_official, save_experiment

__version__ = "0.1.0"
__all__ = ["SRVP", "Config", "Loss", "Output", "PRESETS", "elbo_loss",
           "load_official", "preset", "save_experiment", "__version__"]
