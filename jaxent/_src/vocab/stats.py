r"""Per-row statistics of a softmax over a vocabulary seen in pieces, and the loss from them.

A softmax cross-entropy needs only a few numbers per row (token): the log-sum-exp of its
logits, the logit of its label and, for label smoothing, the sum of its logits. They can be
gathered piece by piece: over vocabulary chunks in one pass (the streaming loss), or over
vocabulary shards on several devices, and merged exactly. This module is that one home: the
online log-sum-exp, the loss from the statistics, and the per-row coefficients of the
logits' gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..arguments import LabelStatus, SoftmaxOptions


def finite_or_zero(m: jax.Array) -> jax.Array:
    """A running maximum made safe to shift by: 0 where it is not finite."""
    return jnp.where(jnp.isfinite(m), m, 0)


def merge_max_sum(m: jax.Array, s: jax.Array, block: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Folds a ``[T, C]`` block of logits into the running maximum m and sum s of each row.

    .. math:: m' = \max(m, \max_j z_j), \qquad s' = s\,e^{m - m'} + \sum_j e^{z_j - m'},

    with the shift taken as 0 while no finite logit has been seen (-inf entries count as
    absent). ``m`` starts at -inf and ``s`` at 0.
    """
    m_new = jnp.maximum(m, jnp.max(block, axis=1))
    shift = finite_or_zero(m_new)
    s_new = s * jnp.exp(m - shift) + jnp.sum(jnp.exp(block - shift[:, None]), axis=1)
    return m_new, s_new


def log_sum_exp(m: jax.Array, s: jax.Array) -> jax.Array:
    """The log-sum-exp from the running maximum and sum: -inf for a row with no finite logit."""
    return finite_or_zero(m) + jnp.log(s)


class RowStats(NamedTuple):
    """The statistics of each row: log-sum-exp, label logit and (for smoothing) logit sum."""

    lse: jax.Array
    z_label: jax.Array
    z_sum: jax.Array


def loss_from_stats(
    stats: RowStats, status: LabelStatus, opts: SoftmaxOptions, num_classes: int
) -> jax.Array:
    r"""The integer-label softmax cross-entropy of each row from its statistics.

    .. math::
        \ell = \operatorname{lse} - (1 - \epsilon)\, z_c - \frac{\epsilon}{K} \sum_j z_j
        + \zeta \operatorname{lse}^2,

    0 for a skipped row (ignored or masked), NaN for an invalid label, +inf for a row with
    no finite logit.
    """
    lse, z_label, z_sum = stats
    gap = lse - opts.on_label * z_label
    if opts.label_smoothing:
        gap = gap - opts.per_class(num_classes) * z_sum
    loss = opts.add_z_loss(jnp.where(lse == -jnp.inf, jnp.inf, gap), lse)
    loss = jnp.where(status.counted, loss, 0)
    return jnp.where(status.invalid, jnp.nan, loss)


class GradCoefficients(NamedTuple):
    r"""Per-row coefficients of the logits' gradient.

    Row n's gradient is :math:`\alpha_n p_n - \beta_n e_{c_n} - \gamma_n`, with ``p`` the
    softmax and :math:`e_c` the label's one-hot vector.
    """

    alpha: jax.Array
    beta: jax.Array
    gamma: jax.Array


def grad_coefficients(
    g_loss: jax.Array,
    g_lse: jax.Array | None,
    lse: jax.Array,
    status: LabelStatus,
    opts: SoftmaxOptions,
    num_classes: int,
) -> GradCoefficients:
    r"""The gradient coefficients for loss cotangents g (and log-sum-exp cotangents g_l).

    .. math::
        \alpha = g\,(1 + 2\zeta \operatorname{lse}) + g_\ell, \qquad
        \beta = g\,(1 - \epsilon), \qquad \gamma = g\,\epsilon / K,

    the g terms only for counted rows; :math:`\alpha` is NaN for an invalid label.
    """
    dtype = lse.dtype
    g = jnp.where(status.counted, g_loss.astype(dtype), 0)
    alpha = g * (1 + 2 * opts.z_loss * lse) if opts.z_loss else g
    if g_lse is not None:
        alpha = alpha + g_lse.astype(dtype)
    alpha = jnp.where(status.invalid, jnp.nan, alpha)
    return GradCoefficients(alpha, g * opts.on_label, g * opts.per_class(num_classes))
