"""Synthetic trace generation: the stable import path for :func:`generate`.

What lives here: nothing but re-exports. The generators themselves live in the
``wslab.traces.generators`` subpackage, one module per kind.
"""

from wslab.traces.generators import GENERATOR_KINDS, generate, iter_generated

__all__ = ["GENERATOR_KINDS", "generate", "iter_generated"]
