"""Entropy and mutual information estimated from histograms of counts.

``from jaxent import estimators``; each function takes counts ``[..., K]`` (integer or
float, batched) and returns one estimate per histogram, jit-able, vmap-able and
differentiable in the counts as floats.
"""

from ._src.estimators import entropy_chao_shen as entropy_chao_shen
from ._src.estimators import entropy_grassberger as entropy_grassberger
from ._src.estimators import entropy_james_stein as entropy_james_stein
from ._src.estimators import entropy_miller_madow as entropy_miller_madow
from ._src.estimators import entropy_nsb as entropy_nsb
from ._src.estimators import entropy_plugin as entropy_plugin
from ._src.estimators import mutual_information_plugin as mutual_information_plugin

__all__ = [
    "entropy_chao_shen",
    "entropy_grassberger",
    "entropy_james_stein",
    "entropy_miller_madow",
    "entropy_nsb",
    "entropy_plugin",
    "mutual_information_plugin",
]
