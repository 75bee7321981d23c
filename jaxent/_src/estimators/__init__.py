"""Estimators of entropy and mutual information from histograms of counts.

``histograms`` holds what every estimator shares (layout, sample size, the empty and invalid
histograms, the gradient of empty bins); ``entropy`` the plug-in estimate, its bias
corrections and the shrinkage estimate; ``nsb`` the Bayesian NSB estimate;
``mutual_information`` the plug-in mutual information of a joint histogram.
"""

from .entropy import entropy_chao_shen as entropy_chao_shen
from .entropy import entropy_grassberger as entropy_grassberger
from .entropy import entropy_james_stein as entropy_james_stein
from .entropy import entropy_miller_madow as entropy_miller_madow
from .entropy import entropy_plugin as entropy_plugin
from .mutual_information import mutual_information_plugin as mutual_information_plugin
from .nsb import entropy_nsb as entropy_nsb

__all__ = [
    "entropy_chao_shen",
    "entropy_grassberger",
    "entropy_james_stein",
    "entropy_miller_madow",
    "entropy_nsb",
    "entropy_plugin",
    "mutual_information_plugin",
]
