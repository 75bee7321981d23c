r"""Evaluation metrics of a classifier: perplexity, calibration errors, the Brier score.

These summarise losses or predicted probabilities rather than train a model: perplexity
and the calibration errors reduce over examples (the one place in jaxent where a function
averages), and all of them run under ``jit`` and ``vmap`` with no data-dependent shapes
(the calibration bins are a fixed one-hot of ``num_bins + 1`` columns). Integer labels
mean what they mean in the losses (``arguments.label_status``): a masked example takes no
part, and a label outside ``[0, K)`` gives NaN.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from . import arguments


def perplexity(
    losses: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis | None = None,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Perplexity of per-token losses: the exponential of their mean.

    .. math::
        \operatorname{PPL}(\ell) = b^{\frac{1}{n} \sum_{i \in \text{where}} \ell_i},

    with :math:`\ell_i` the per-token cross-entropies (negative log-likelihoods) in base
    :math:`b` (:math:`e` by default: ``base=2`` for losses in bits) and n the number of
    tokens that ``where`` allows. Masked tokens take no part, whatever they hold (NaN
    included), and get gradient 0. With no token left (all masked, or an empty axis) the
    mean is undefined and the perplexity is NaN: a perfect score of 1 would be a plausible
    wrong number. A +inf loss gives +inf. The gradient is
    :math:`\partial \operatorname{PPL} / \partial \ell_i = \operatorname{PPL} \ln b / n`.

    Args:
      losses: per-token losses, any shape and real dtype (e.g. the output of
        ``softmax_cross_entropy_with_integer_labels``).
      axis: the axis or axes averaged over; None (the default) averages over all.
      where: optional boolean mask: broadcastable to ``losses``, or of the shape that
        remains after ``axis`` (whole sequences).
      base: the base of the losses' logarithm (static): None for nats, 2 for bits.

    Returns:
      ``losses``' shape without ``axis`` (a scalar by default), at least float32.

    Raises:
      TypeError: ``losses`` is not real-valued, or ``where`` is not boolean.
      ValueError: ``axis`` is out of range, ``where`` has the wrong shape, or ``base`` is
        invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> losses = jnp.array([[2.0, 1.0, 3.0], [1.5, 0.5, 9.0]])
      >>> keep = jnp.array([[True, True, True], [True, True, False]])
      >>> print(f"{je.perplexity(losses, where=keep):.4f}")
      4.9530
      >>> print(", ".join(f"{v:.4f}" for v in je.perplexity(losses, axis=1, where=keep)))
      7.3891, 2.7183
      >>> print(f"{je.perplexity(jnp.array([1.0, 3.0]), base=2):.4f}")
      4.0000

    References:
      F. Jelinek et al., "Perplexity: a measure of the difficulty of speech recognition
      tasks", JASA 1977.
    """
    x = arguments.probabilities(losses, "losses")
    axes = tuple(range(x.ndim)) if axis is None else arguments.normalize_axes(axis, x.ndim)
    mask = arguments.normalize_where(where, x.shape, axes)
    ln_b = arguments.log_base(base)
    x = x.astype(arguments.compute_dtype(x))
    total = arguments.masked_sum(x, axes, mask)
    if mask is None:
        count = jnp.asarray(math.prod(x.shape[a] for a in axes), x.dtype)
    else:
        count = jnp.sum(mask.full, axis=axes).astype(x.dtype)
    mean = total / count  # 0 / 0 = NaN with no token
    return jnp.exp(mean if ln_b is None else mean * ln_b)


class _Bins:
    """Per-bin sums of the top-class confidence, the correct predictions and the counts.

    Bins are equal-width in [0, 1] with left-closed edges :math:`k / B`: bin k holds the
    confidences in :math:`[k/B, (k+1)/B)`, and a confidence of exactly 1 forms a bin of
    its own (bin B), as ``torchmetrics`` (``torch.bucketize(..., right=True)``) has it.
    """

    def __init__(self, probs, labels, num_bins, where):
        p = arguments.probabilities(probs, "probs")
        labels = arguments.as_array(labels, "labels")
        arguments.require_integer(labels, "labels")
        if p.ndim < 2 or p.shape[-1] == 0:
            raise ValueError(
                f"`probs` must have shape [..., N, K] (examples, then at least one class), "
                f"got {p.shape}."
            )
        if labels.shape != p.shape[:-1]:
            raise ValueError(
                f"`labels` must have the shape of `probs` without the class axis: "
                f"probs.shape={p.shape} needs labels.shape={p.shape[:-1]}, got {labels.shape}."
            )
        b = arguments.static_index(num_bins, "num_bins")
        if b is None or b < 1:
            raise ValueError(f"`num_bins` must be a positive integer, got {num_bins!r}.")
        mask = arguments.normalize_where(where, labels.shape, (labels.ndim - 1,))
        keep = jnp.ones(labels.shape, bool) if mask is None else mask.full
        dtype = arguments.compute_dtype(p)
        p = p.astype(dtype)
        status = arguments.label_status(labels, p.shape[-1], row_mask=keep)
        # NaN is due for an invalid label or a row that is not a probability vector.
        bad = jnp.any(jnp.isnan(p) | (p < 0) | (p > 1), axis=-1) & keep
        p = jnp.where(keep[..., None], p, 0)  # excluded rows, whatever they hold, read as 0
        conf = jnp.max(p, axis=-1)
        correct = (jnp.argmax(p, axis=-1) == status.target) & status.counted
        self.poisoned = jnp.any(status.invalid | bad, axis=-1)
        self.poison = _poison(status.invalid | bad, p)
        edges = jnp.asarray(np.arange(b + 1) / b, dtype)
        index = jnp.sum(conf[..., None] >= edges, axis=-1) - 1
        onehot = (index[..., None] == jnp.arange(b + 1)) & keep[..., None]
        self.count = jnp.sum(onehot, axis=-2).astype(dtype)
        self.conf = jnp.sum(jnp.where(onehot, conf[..., None], 0), axis=-2)
        self.correct = jnp.sum(jnp.where(onehot, correct[..., None], 0), axis=-2).astype(dtype)
        self.n = jnp.sum(keep, axis=-1).astype(dtype)

    def gaps(self) -> jax.Array:
        """|sum of correct - sum of confidences| per bin."""
        return jnp.abs(self.correct - self.conf)

    def finish(self, value: jax.Array) -> jax.Array:
        """NaN where an example is invalid or none is left."""
        value = jnp.where(self.poisoned | (self.n == 0), jnp.nan, value)
        return value + jnp.sum(self.poison, axis=-1)


def _poison(rows: jax.Array, x: jax.Array, axis: int = -1) -> jax.Array:
    """Per row, NaN times the row's sum of ``x`` where ``rows`` holds, else 0: added to a
    value that is NaN there, it gives those rows NaN derivatives (reverse and forward
    mode), as an invalid example's gradient is in every jaxent function; 0 elsewhere."""
    scale = jnp.where(rows, jnp.nan, 0).astype(x.dtype)
    return scale * jnp.sum(jnp.where(jnp.expand_dims(rows, axis), x, 0), axis=axis)


_CALIBRATION_DOC = r"""

    Binning (equal width, on the top-class confidence :math:`\hat p_i = \max_j p_{ij}`,
    the prediction being the first class of largest probability): bin k of B holds the
    confidences in :math:`[k/B, (k+1)/B)` and a confidence of exactly 1 forms a bin of its
    own, as in ``torchmetrics``' ``CalibrationError(task='multiclass', n_bins=B)``
    (left-closed bins, from ``torch.bucketize(..., right=True)`` on ``torch.linspace``
    edges). The edges here are :math:`k/B` rounded to the compute dtype; ``torch.linspace``
    rounds some edges one unit in the last place differently (which ones depends on B and
    on the machine's vector width: 0.2 is 0.20000002 for B = 15 on this project's CPU),
    which matters only for a confidence lying exactly on such an edge. torchmetrics
    computes in float32 whatever the input.

    Examples excluded by ``where`` take no part, whatever they hold. NaN comes back where
    an example that takes part has a label outside ``[0, K)`` or probabilities that are
    NaN or outside [0, 1] (the gradient is NaN in such an example, reverse and forward
    mode, and finite in the others), and where no example takes part (the average is
    undefined).
    Probabilities are used as given (rows need not sum to 1; logits are not detected and
    converted, as torchmetrics does for values outside [0, 1]: they give NaN). The value
    is piecewise differentiable in ``probs`` (the bin assignment is piecewise constant).

    Args:
      probs: predicted probabilities, shape ``[..., N, K]``: leading batch axes, N
        examples, K classes.
      labels: integer class indices, shape ``[..., N]``.
      num_bins: the number of equal-width bins B (static), 15 by default.
      where: optional boolean mask of the examples, broadcastable to ``[..., N]``.

    Returns:
      Shape ``[...]`` (a scalar for 2-D ``probs``), at least float32.

    Raises:
      TypeError: ``probs`` is not real, the labels are not integer, ``where`` is not
        boolean, or ``num_bins`` is not an int.
      ValueError: the shapes do not fit, or ``num_bins`` < 1.
"""


def expected_calibration_error(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    num_bins: int = 15,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    bins = _Bins(probs, labels, num_bins, where)
    return bins.finish(jnp.sum(bins.gaps(), axis=-1) / bins.n)


def maximum_calibration_error(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    num_bins: int = 15,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    bins = _Bins(probs, labels, num_bins, where)
    nonempty = bins.count > 0
    per_bin = jnp.where(nonempty, bins.gaps() / jnp.where(nonempty, bins.count, 1), 0)
    return bins.finish(jnp.max(per_bin, axis=-1))


expected_calibration_error.__doc__ = (
    r"""Expected calibration error (ECE) of top-class predictions, equal-width bins.

    .. math::
        \operatorname{ECE} = \sum_{k=0}^{B} \frac{n_k}{n}
        \left|\operatorname{acc}_k - \operatorname{conf}_k\right|
        = \frac{1}{n} \sum_{k} \Bigl|\sum_{i \in k} (\mathbb{1}[\hat y_i = y_i]
        - \hat p_i)\Bigr|,

    over the n examples that ``where`` allows, :math:`n_k` of them in bin k, with
    :math:`\operatorname{acc}_k` and :math:`\operatorname{conf}_k` the bin's accuracy and
    mean confidence (empty bins contribute 0). It equals ``torchmetrics``'
    ``CalibrationError(task='multiclass', norm='l1')``; 0 <= ECE <= MCE <= 1."""
    + _CALIBRATION_DOC
    + r"""
    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> probs = jnp.array([[0.25, 0.20, 0.55], [0.55, 0.05, 0.40],
      ...                    [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]])
      >>> labels = jnp.array([0, 1, 2, 0])
      >>> print(f"{je.expected_calibration_error(probs, labels, num_bins=3):.4f}")
      0.2000

    References:
      M. P. Naeini, G. Cooper and M. Hauskrecht, "Obtaining Well Calibrated
      Probabilities Using Bayesian Binning", AAAI 2015.
      C. Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """
)

maximum_calibration_error.__doc__ = (
    r"""Maximum calibration error (MCE) of top-class predictions, equal-width bins.

    .. math::
        \operatorname{MCE} = \max_{k:\, n_k > 0}
        \left|\operatorname{acc}_k - \operatorname{conf}_k\right|,

    the largest gap between a non-empty bin's accuracy and its mean confidence (the
    notation of ``expected_calibration_error``). It equals ``torchmetrics``'
    ``CalibrationError(task='multiclass', norm='max')``."""
    + _CALIBRATION_DOC
    + r"""
    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> probs = jnp.array([[0.25, 0.20, 0.55], [0.55, 0.05, 0.40],
      ...                    [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]])
      >>> labels = jnp.array([0, 1, 2, 0])
      >>> print(f"{je.maximum_calibration_error(probs, labels, num_bins=3):.4f}")
      0.2333

    References:
      M. P. Naeini, G. Cooper and M. Hauskrecht, "Obtaining Well Calibrated
      Probabilities Using Bayesian Binning", AAAI 2015.
    """
)


def brier_score(
    probs: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Multi-class Brier score of predicted probabilities against integer labels.

    .. math::
        \operatorname{BS}(p, c) = \sum_{j \in \text{where}} (p_j - \mathbb{1}[j = c])^2,

    per example, in [0, 2] for a probability vector. Masked-out classes take no part (a
    label naming one contributes only the other classes' :math:`p_j^2`); a masked-out
    example gives 0 with gradient 0, whatever it holds. A label outside ``[0, K)`` or a
    probability that is NaN or outside [0, 1] gives NaN, in the value and in that
    example's gradient (reverse and forward mode). The gradient is
    :math:`2 (p - e_c)`.

    This is Brier's original score, summed over the classes; averaged over examples it
    is scikit-learn's ``brier_score_loss(y, p)`` for 2-D ``p`` (``scale_by_half=False``,
    its default for more than two classes). For binary problems scikit-learn's default
    ``brier_score_loss(y, p1)`` is :math:`\frac{1}{n}\sum_i (p_{1,i} - y_i)^2`, half the
    mean of this score on ``[1 - p1, p1]``.

    Args:
      probs: predicted probabilities, shape ``[..., K, ...]``.
      labels: integer class indices, ``probs``' shape without ``axis``.
      axis: the class axis, or a tuple of axes flattened together as the classes.
      where: optional boolean mask: broadcastable to ``probs`` (per class) or of
        ``labels``' shape (whole examples).

    Returns:
      The per-example score, ``labels``' shape, at least float32.

    Raises:
      TypeError: ``probs`` is not floating, the labels not integer, or ``where`` not
        boolean.
      ValueError: the labels' shape is not ``probs``' shape without ``axis``, or ``axis``
        is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> probs = jnp.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
      >>> print(", ".join(f"{v:.4f}" for v in je.brier_score(probs, jnp.array([0, 1]))))
      0.1400, 0.7400

    References:
      G. W. Brier, "Verification of Forecasts Expressed in Terms of Probability",
      Monthly Weather Review, 1950.
    """
    p = arguments.as_array(probs, "probs")
    labels = arguments.as_array(labels, "labels")
    arguments.require_integer(labels, "labels")
    ca = arguments.ClassAxis(p, axis, where, name="probs")
    if labels.shape != ca.batch_shape:
        raise ValueError(
            f"`labels` must have the shape of `probs` without the class axis: probs.shape="
            f"{p.shape} with axis={axis!r} needs labels.shape={ca.batch_shape}, got "
            f"{labels.shape}."
        )
    dtype = arguments.compute_dtype(p)
    row_mask = ca.row_mask
    if ca.mask is not None and row_mask is None:
        row_mask = jnp.any(ca.mask, axis=ca.axis)
    status = arguments.label_status(labels, ca.num_classes, row_mask=row_mask)
    keep = ca.expand(~status.skipped)
    keep = keep if ca.mask is None else keep & ca.mask
    # Excluded entries are read as 0 before any arithmetic, so that even NaN there takes
    # no part in the value or the gradient.
    given = jnp.where(keep, ca.z.astype(dtype), 0)
    outside = (given < 0) | (given > 1)
    x = jnp.where(outside, jnp.nan, given)
    classes = jax.lax.broadcasted_iota(jnp.int32, x.shape, ca.axis)
    hit = (classes == ca.expand(status.target)).astype(dtype)
    score = jnp.sum(jnp.where(keep, (x - hit) ** 2, 0), axis=ca.axis)
    bad = status.invalid | jnp.any(outside | jnp.isnan(given), axis=ca.axis)
    return jnp.where(status.invalid, jnp.nan, score) + _poison(bad, given, ca.axis)
