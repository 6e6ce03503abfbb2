"""Deprecated alias of :mod:`srvp.data.batches` (removed in the next release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.data.batches")
