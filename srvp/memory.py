"""Deprecated alias (removed in the next release): ``release_free_memory`` is in
:mod:`srvp.cli.evaluate`, behind ``evaluate --release-memory``."""
from srvp._deprecated import alias

alias(__name__, "srvp.cli.evaluate")
