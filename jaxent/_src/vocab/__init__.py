"""The large-vocabulary loss: linear layer + softmax cross-entropy, never forming the logits.

``stats`` holds the per-row statistics (online log-sum-exp, label logit, logit sum) and the
loss computed from them; ``streaming`` the chunked implementation (the public function);
``reference`` the dense computation on materialised logits that it must equal.
"""

from .reference import dense_linear_softmax_cross_entropy as dense_linear_softmax_cross_entropy
from .streaming import linear_softmax_cross_entropy as linear_softmax_cross_entropy

__all__ = ["dense_linear_softmax_cross_entropy", "linear_softmax_cross_entropy"]
