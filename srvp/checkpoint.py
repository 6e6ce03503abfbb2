"""Deprecated alias of :mod:`srvp.run_folder` (removed in the next release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.run_folder")
