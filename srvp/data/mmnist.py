"""Deprecated alias of :mod:`srvp.data.moving_mnist` (removed in the next release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.data.moving_mnist")
