"""The large-vocabulary fused linear + softmax cross-entropy.

``chunked`` holds the streaming implementation (the public function); ``reference`` the
dense computation on materialised logits that it must equal.
"""

from .chunked import linear_softmax_cross_entropy as linear_softmax_cross_entropy
from .reference import dense_linear_softmax_cross_entropy as dense_linear_softmax_cross_entropy

__all__ = ["dense_linear_softmax_cross_entropy", "linear_softmax_cross_entropy"]
