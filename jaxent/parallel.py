"""Vocabulary-parallel losses: the class axis split over devices, inside ``jax.shard_map``.

Each function takes this device's shard of the classes (logits ``[..., V/n]``, or a weight
``[D, V/n]``) and the mesh axis name the classes are split over, exchanges only per-row
statistics with the other shards, and returns the value of its single-device counterpart.
"""

from ._src.vocab.parallel import (
    vocab_parallel_entropy_from_logits as vocab_parallel_entropy_from_logits,
)
from ._src.vocab.parallel import (
    vocab_parallel_kl_divergence_from_logits as vocab_parallel_kl_divergence_from_logits,
)
from ._src.vocab.parallel import (
    vocab_parallel_linear_softmax_cross_entropy as vocab_parallel_linear_softmax_cross_entropy,
)
from ._src.vocab.parallel import (
    vocab_parallel_softmax_cross_entropy as vocab_parallel_softmax_cross_entropy,
)

__all__ = [
    "vocab_parallel_entropy_from_logits",
    "vocab_parallel_kl_divergence_from_logits",
    "vocab_parallel_linear_softmax_cross_entropy",
    "vocab_parallel_softmax_cross_entropy",
]
