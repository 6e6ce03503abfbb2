"""Deprecated (removed in the next release): ``read_log`` is in
:mod:`srvp.run_folder`, ``plot_log`` in :mod:`srvp.viz`."""
import warnings

from .run_folder import read_log
from .viz import plot_log

warnings.warn("srvp.runlog is deprecated and will be removed in the next release: "
              "use srvp.run_folder.read_log and srvp.viz.plot_log",
              DeprecationWarning, stacklevel=2)
__all__ = ["plot_log", "read_log"]
