"""Deprecated alias of :mod:`srvp.cli.evaluate` (removed in the next release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.cli.evaluate")
