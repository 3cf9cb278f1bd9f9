"""Construct-defined binary layouts behind typed ``decode`` / ``encode`` pairs.

Each submodule declares its layouts once, next to the specification clause they come from,
with their own test vectors; :func:`all_layouts` imports every submodule and returns the
registry that the generic layout test walks. See :mod:`cardperso.layouts.base`.
"""

from cardperso.layouts.base import LAYOUTS, Layout, all_layouts, register_layout

__all__ = ["LAYOUTS", "Layout", "all_layouts", "register_layout"]
