"""Deprecated alias of :mod:`srvp.data.mnist_idx` (removed in the next release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.data.mnist_idx")
