"""jaxent: differentiable information-theory measures and cross-entropy losses for JAX."""

from ._src.divergences import cross_entropy as cross_entropy
from ._src.divergences import kl_divergence as kl_divergence
from ._src.divergences import kl_divergence_from_logits as kl_divergence_from_logits
from ._src.entropy import binary_entropy as binary_entropy
from ._src.entropy import entropy as entropy
from ._src.entropy import entropy_from_logits as entropy_from_logits
from ._src.entropy import self_information as self_information
from ._src.losses import binary_cross_entropy as binary_cross_entropy
from ._src.losses import multilabel_sigmoid_cross_entropy as multilabel_sigmoid_cross_entropy
from ._src.losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._src.losses import softmax_cross_entropy as softmax_cross_entropy
from ._src.losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._src.value_checks import check_integer_labels as check_integer_labels
from ._src.value_checks import check_probabilities as check_probabilities
from ._src.vocab import linear_softmax_cross_entropy as linear_softmax_cross_entropy

__version__ = "0.1.0"

__all__ = [
    "binary_cross_entropy",
    "binary_entropy",
    "check_integer_labels",
    "check_probabilities",
    "cross_entropy",
    "entropy",
    "entropy_from_logits",
    "kl_divergence",
    "kl_divergence_from_logits",
    "linear_softmax_cross_entropy",
    "multilabel_sigmoid_cross_entropy",
    "self_information",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
