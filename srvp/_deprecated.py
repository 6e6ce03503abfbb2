"""Old module paths kept for one release: importing one warns and hands over
the module that replaced it."""
from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make the module ``old`` (being imported) the module ``new``."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release: "
                  f"import {new} instead", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
