"""jaxent: differentiable information-theory measures and cross-entropy losses for JAX."""

from . import estimators as estimators
from . import parallel as parallel
from ._src.divergences import cross_entropy as cross_entropy
from ._src.divergences import kl_divergence as kl_divergence
from ._src.divergences import kl_divergence_from_logits as kl_divergence_from_logits
from ._src.entropy import binary_entropy as binary_entropy
from ._src.entropy import entropy as entropy
from ._src.entropy import entropy_from_logits as entropy_from_logits
from ._src.entropy import renyi_entropy as renyi_entropy
from ._src.entropy import self_information as self_information
from ._src.entropy import tsallis_entropy as tsallis_entropy
from ._src.f_divergences import hellinger as hellinger
from ._src.f_divergences import js_divergence as js_divergence
from ._src.f_divergences import js_divergence_from_logits as js_divergence_from_logits
from ._src.f_divergences import renyi_divergence as renyi_divergence
from ._src.f_divergences import renyi_divergence_from_logits as renyi_divergence_from_logits
from ._src.f_divergences import total_variation as total_variation
from ._src.focal import poly1_softmax_cross_entropy as poly1_softmax_cross_entropy
from ._src.focal import sigmoid_focal_loss as sigmoid_focal_loss
from ._src.focal import softmax_focal_loss as softmax_focal_loss
from ._src.gaussian import gaussian_entropy as gaussian_entropy
from ._src.gaussian import gaussian_entropy_diag as gaussian_entropy_diag
from ._src.gaussian import gaussian_kl as gaussian_kl
from ._src.gaussian import gaussian_kl_diag as gaussian_kl_diag
from ._src.joint import conditional_entropy as conditional_entropy
from ._src.joint import conditional_entropy_from_logits as conditional_entropy_from_logits
from ._src.joint import joint_entropy as joint_entropy
from ._src.joint import joint_entropy_from_logits as joint_entropy_from_logits
from ._src.joint import mutual_information as mutual_information
from ._src.joint import mutual_information_from_logits as mutual_information_from_logits
from ._src.joint import normalized_mutual_information as normalized_mutual_information
from ._src.losses import binary_cross_entropy as binary_cross_entropy
from ._src.losses import multilabel_sigmoid_cross_entropy as multilabel_sigmoid_cross_entropy
from ._src.losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._src.losses import softmax_cross_entropy as softmax_cross_entropy
from ._src.losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._src.metrics import brier_score as brier_score
from ._src.metrics import expected_calibration_error as expected_calibration_error
from ._src.metrics import maximum_calibration_error as maximum_calibration_error
from ._src.metrics import perplexity as perplexity
from ._src.value_checks import check_integer_labels as check_integer_labels
from ._src.value_checks import check_probabilities as check_probabilities
from ._src.vocab import linear_softmax_cross_entropy as linear_softmax_cross_entropy

__version__ = "0.1.0"

__all__ = [
    "binary_cross_entropy",
    "binary_entropy",
    "brier_score",
    "check_integer_labels",
    "check_probabilities",
    "conditional_entropy",
    "conditional_entropy_from_logits",
    "cross_entropy",
    "entropy",
    "entropy_from_logits",
    "estimators",
    "expected_calibration_error",
    "gaussian_entropy",
    "gaussian_entropy_diag",
    "gaussian_kl",
    "gaussian_kl_diag",
    "hellinger",
    "joint_entropy",
    "joint_entropy_from_logits",
    "js_divergence",
    "js_divergence_from_logits",
    "kl_divergence",
    "kl_divergence_from_logits",
    "linear_softmax_cross_entropy",
    "maximum_calibration_error",
    "multilabel_sigmoid_cross_entropy",
    "mutual_information",
    "mutual_information_from_logits",
    "normalized_mutual_information",
    "parallel",
    "perplexity",
    "poly1_softmax_cross_entropy",
    "renyi_divergence",
    "renyi_divergence_from_logits",
    "renyi_entropy",
    "self_information",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "softmax_focal_loss",
    "total_variation",
    "tsallis_entropy",
]
