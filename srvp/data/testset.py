"""Deprecated alias of :mod:`srvp.data.moving_mnist_testset` (removed next
release)."""
from srvp._deprecated import alias

alias(__name__, "srvp.data.moving_mnist_testset")
