"""The dense reference: materialise the logits, then the core integer-label cross-entropy.

This is what the streaming implementation must equal, and what it is benchmarked against.
It holds a ``[tokens, V]`` logits array (and its gradient), so it is for tests and
benchmarks, not for large vocabularies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import arguments
from ..losses import softmax_cross_entropy_with_integer_labels


def dense_linear_softmax_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    where: jax.typing.ArrayLike | None = None,
    return_lse: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """``linear_softmax_cross_entropy`` computed the plain way, on materialised logits.

    The logits ``hidden @ weight (+ bias)`` are accumulated in the compute dtype (at least
    float32), soft-capped when asked, and passed to
    ``softmax_cross_entropy_with_integer_labels``. The log-sum-exp, when returned, runs over
    the whole vocabulary for every token, masked or not.
    """
    hidden = arguments.as_array(hidden, "hidden")
    weight = arguments.as_array(weight, "weight")
    arrays = (
        [hidden, weight] if bias is None else [hidden, weight, arguments.as_array(bias, "bias")]
    )
    dtype = arguments.compute_dtype(*arrays)
    logits = jnp.matmul(hidden, weight, preferred_element_type=dtype)
    if bias is not None:
        logits = logits + jnp.asarray(bias).astype(dtype)
    if logit_softcap is not None:
        logits = logit_softcap * jnp.tanh(logits / logit_softcap)
    loss = softmax_cross_entropy_with_integer_labels(
        logits,
        labels,
        where=where,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        ignore_index=ignore_index,
    )
    if return_lse:
        return loss, jax.nn.logsumexp(logits, axis=-1)
    return loss
