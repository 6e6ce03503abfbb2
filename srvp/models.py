"""Deprecated alias of :mod:`srvp.model_registry` (removed in the next release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.model_registry")
