r"""Classification losses: softmax cross-entropy (soft and integer labels), sigmoid and
multi-label cross-entropy on logits, and binary cross-entropy on probabilities.

The logits forms are computed from max-shifted logits (log-sum-exp stable), in at least
float32, and carry ``jax.custom_jvp`` rules written from the closed-form derivatives, so
forward mode, reverse mode, ``jax.hessian`` and ``vmap`` all work and no NaN arises from a
-inf logit. What an integer label and each option mean lives in ``arguments``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import arguments
from .numerics import is_zero, negated, times_finite, xlogy
from .softmax import class_masks, softmax_xent_int, softmax_xent_targets


def _smooth(t: jax.Array, ca: arguments.ClassAxis, opts: arguments.SoftmaxOptions) -> jax.Array:
    """The smoothed targets over the allowed classes (``t`` already 0 outside them)."""
    if opts.label_smoothing == 0:
        return t
    return ca.clean(opts.on_label * t + opts.per_class(ca.allowed_count()), 0)


def softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    class_weights: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy of logits against probability labels (one-hot or soft).

    With :math:`t = (1 - \epsilon)\,y + \epsilon / K` (K the classes that ``where`` allows)
    and per-class weights :math:`w`:

    .. math::
        \ell(z, y) = -\sum_{j \in \text{where}} w_j t_j \log \operatorname{softmax}(z)_j
        + \zeta \operatorname{logsumexp}(z)^2,

    where the softmax and log-sum-exp run over the allowed classes only. Terms with
    :math:`w_j t_j = 0` are 0 even at a -inf logit, and their logit gets gradient exactly
    0. A fully masked row gives 0 with gradient 0; masked entries may hold anything (NaN
    included). Label mass on a -inf logit gives +inf, with the gradient below (finite: its
    limit as that logit falls to -inf) and that formula's Hessian. A +inf allowed logit
    gives +inf when all label mass lies on finite logits and NaN otherwise (the limit is
    undefined), its derivatives NaN; a NaN allowed logit gives NaN. Labels are not
    renormalised. The gradient in the logits is
    :math:`\operatorname{softmax}(z) \sum_j w_j t_j - w \odot t
    + 2\zeta \operatorname{lse}(z) \operatorname{softmax}(z)`.

    Without the options this equals ``optax.softmax_cross_entropy`` and torch's
    ``cross_entropy(..., reduction='none')`` with probability targets; ``class_weights``
    and ``label_smoothing`` follow torch's ``weight`` and ``label_smoothing``.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., K, ...]``, floating dtype.
      labels: target probabilities, the same shape as ``logits``.
      axis: the class axis, or a tuple of axes flattened together as the classes.
      where: optional boolean mask: broadcastable to ``logits`` (per class) or of the
        per-example shape (whole rows).
      label_smoothing: :math:`\epsilon \in [0, 1)` (static).
      z_loss: :math:`\zeta \ge 0`, the weight of the squared log-normaliser (static).
      class_weights: optional per-class weights, shape ``[K]``. A class whose target is 0
        takes no part even under an infinite or NaN weight (as in the integer-label loss).

    Returns:
      The per-example loss, ``logits``' shape without ``axis``, float32 for
      half-precision logits (float64 stays float64).

    Raises:
      TypeError: the logits are not floating, or ``where`` is not boolean.
      ValueError: shapes differ, ``axis`` is out of range, an option is out of range, or
        ``class_weights`` has the wrong length.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> logits = jnp.log(jnp.array([0.7, 0.2, 0.1]))
      >>> print(f"{je.softmax_cross_entropy(logits, jnp.array([1.0, 0.0, 0.0])):.4f}")
      0.3567

    References:
      C. Szegedy et al., "Rethinking the Inception Architecture", 2016 (label smoothing).
      A. Chowdhery et al., "PaLM", 2022 (z-loss).
    """
    logits = arguments.as_array(logits, "logits")
    labels = arguments.probabilities(labels, "labels")
    arguments.require_float(logits, "logits")
    arguments.require_same_shape(logits, labels, "logits", "labels")
    opts = arguments.SoftmaxOptions.validate(label_smoothing, z_loss)
    ca = arguments.ClassAxis(logits, axis, where)
    weights = arguments.class_weight_array(class_weights, ca.class_shape)
    dtype = arguments.compute_dtype(logits, labels)
    # Logits and labels are read as they are, in one fused pass after the row maximum; a
    # negative label gives NaN, and a masked class takes no part, its weight included.
    mask, skip = class_masks(ca, where)
    loss, lse = softmax_xent_targets(
        ca.z,
        ca.layout(labels),
        class_weights=_class_weights(weights, ca, dtype),
        mask=mask,
        skip=skip,
        smoothing=opts.label_smoothing,
        axis=ca.axis,
    )
    return opts.add_z_loss(loss, lse)


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    class_weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Softmax cross-entropy of logits against integer class labels.

    The same loss as ``softmax_cross_entropy`` with ``labels`` one-hot encoded:

    .. math::
        \ell(z, c) = -\sum_{j \in \text{where}} w_j t_j \log \operatorname{softmax}(z)_j
        + \zeta \operatorname{logsumexp}(z)^2,
        \qquad t = (1 - \epsilon)\,e_c + \epsilon / K.

    Examples whose label equals ``ignore_index`` give 0 with gradient 0, whatever their
    logits hold. Any other label outside ``[0, K)`` gives NaN for that example, in value
    and gradient: no wrap-around (``-1`` is not the last class) and no clamping. A label
    naming a class that ``where`` excludes contributes nothing, as in the one-hot form.
    With a tuple ``axis`` a label is a flat (row-major) index into those axes, as in optax.

    Args:
      logits: unnormalised log-probabilities, shape ``[..., K, ...]``, floating dtype.
      labels: integer class indices, ``logits``' shape without ``axis``.
      axis: the class axis, or a tuple of axes flattened together as the classes.
      where: optional boolean mask: broadcastable to ``logits`` (per class) or of
        ``labels``' shape (whole examples).
      label_smoothing: :math:`\epsilon \in [0, 1)` (static).
      z_loss: :math:`\zeta \ge 0` (static).
      class_weights: optional per-class weights, shape ``[K]``, as torch's ``weight``.
      ignore_index: a label value marking examples to skip (static), or None.

    Returns:
      The per-example loss, ``labels``' shape, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating, the labels not integer, or ``where`` not
        boolean.
      ValueError: the labels' shape is not the logits' shape without ``axis``, or an
        option is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> loss = je.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, -100]),
      ...                                                      ignore_index=-100)
      >>> print(", ".join(f"{v:.4f}" for v in loss))
      0.2761, 0.0000

    References:
      PyTorch, ``torch.nn.functional.cross_entropy``.
    """
    logits = arguments.as_array(logits, "logits")
    labels = arguments.as_array(labels, "labels")
    arguments.require_float(logits, "logits")
    arguments.require_integer(labels, "labels")
    opts = arguments.SoftmaxOptions.validate(label_smoothing, z_loss, ignore_index)
    ca = arguments.ClassAxis(logits, axis, where)
    if labels.shape != ca.batch_shape:
        raise ValueError(
            f"`labels` must have the logits' shape without the class axis: logits.shape="
            f"{logits.shape} with axis={axis!r} needs labels.shape={ca.batch_shape}, got "
            f"{labels.shape}."
        )
    weights = arguments.class_weight_array(class_weights, ca.class_shape)
    dtype = arguments.compute_dtype(logits)
    k = ca.num_classes
    row_mask = ca.row_mask
    per_class = ca.mask is not None and row_mask is None
    if ca.mask is not None and row_mask is None:  # per_class, spelt out for the type checker
        # A row with no allowed class is excluded as a whole, whatever its label holds.
        row_mask = jnp.any(ca.mask, axis=ca.axis)
    status = arguments.label_status(labels, k, ignore_index=opts.ignore_index, row_mask=row_mask)
    w = jnp.ones(labels.shape, dtype)
    if weights is not None:
        w = arguments.gather(weights.astype(dtype), status.target)
    w = jnp.where(status.counted, w, 0)
    w = jnp.where(status.invalid, jnp.nan, w)

    if not per_class and opts.label_smoothing == 0:
        # One-hot targets on whole rows: the target array is never formed, and skipped
        # rows are read as empty, whatever their logits hold.
        skipped = None if row_mask is None and opts.ignore_index is None else status.skipped
        loss, lse = softmax_xent_int(ca.z, status.target, w, skipped, ca.axis)
        return opts.add_z_loss(loss, lse)

    # One-hot targets built inside the fused passes, a block of rows at a time; the label's
    # weight carries NaN for an invalid label, and skipped rows give 0 whatever they hold.
    mask, _ = class_masks(ca, where) if per_class else (None, None)
    loss, lse = softmax_xent_targets(
        ca.z,
        None,
        labels=ca.expand(status.target),
        # The label's class weight enters through ``class_weights``, as the smoothing's does.
        label_weight=ca.expand(jnp.where(status.invalid, jnp.nan, status.counted.astype(dtype))),
        class_weights=_class_weights(weights, ca, dtype),
        mask=mask,
        skip=ca.expand(status.skipped),
        smoothing=opts.label_smoothing,
        axis=ca.axis,
    )
    return opts.add_z_loss(loss, lse)


def _class_weights(weights, ca: arguments.ClassAxis, dtype) -> jax.Array | None:
    """Per-class weights shaped to broadcast along the class axis of ``ca.z``."""
    if weights is None:
        return None
    shape = [1] * ca.z.ndim
    shape[ca.axis] = ca.num_classes
    return weights.astype(dtype).reshape(shape)


@jax.custom_jvp
def _sigmoid_xent(z, y, pos_weight):
    a = y if pos_weight is None else pos_weight * y
    b = 1 - y
    pos = jnp.where(a != 0, a * jax.nn.softplus(-z), 0)
    neg = jnp.where(b != 0, b * jax.nn.softplus(z), 0)
    return pos + neg


def _sigmoid_xent_jvp(primals, tangents):
    z, y, pw = primals
    dz, dy, dpw = tangents
    out = _sigmoid_xent(z, y, pw)
    dout = jnp.zeros_like(out)
    a = y if pw is None else pw * y
    if not is_zero(dz):
        dout = dout + (jax.nn.sigmoid(z) * (a + 1 - y) - a) * dz
    # A zero coefficient times softplus(-z) is 0 only where softplus(-z) is +inf (z = -inf):
    # elsewhere the product is kept, so that its slope in the coefficient (mixed second
    # derivatives at y = 0 or pos_weight = 0) is softplus(-z), not 0.
    if not is_zero(dy):
        sp_neg = jax.nn.softplus(-z)
        pos = sp_neg if pw is None else times_finite(pw, sp_neg)
        dout = dout + (pos - jax.nn.softplus(z)) * dy
    if pw is not None and not is_zero(dpw):
        dout = dout + times_finite(y, jax.nn.softplus(-z)) * dpw
    return out, dout


_sigmoid_xent.defjvp(_sigmoid_xent_jvp, symbolic_zeros=True)


def _sigmoid_inputs(logits, labels, pos_weight):
    logits = arguments.as_array(logits, "logits")
    labels = arguments.as_array(labels, "labels")
    arguments.require_float(logits, "logits")
    arguments.require_real(labels, "labels")
    arguments.require_same_shape(logits, labels, "logits", "labels")
    weights = ()
    if pos_weight is not None:
        pos_weight = arguments.as_array(pos_weight, "pos_weight")
        arguments.require_real(pos_weight, "pos_weight")
        try:
            ok = jnp.broadcast_shapes(pos_weight.shape, logits.shape) == logits.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"`pos_weight` of shape {pos_weight.shape} must broadcast to the logits' "
                f"shape {logits.shape} (e.g. one weight per class on the last axis)."
            )
        weights = (pos_weight,)
    dtype = arguments.compute_dtype(logits, labels, weights=weights)
    pw = None if pos_weight is None else jnp.broadcast_to(pos_weight, logits.shape).astype(dtype)
    y = labels.astype(dtype)
    # A label is a Bernoulli probability: outside [0, 1] it gives NaN, as on probabilities.
    y = jnp.where((y < 0) | (y > 1), jnp.nan, y)
    return logits.astype(dtype), y, pw


def sigmoid_binary_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    pos_weight: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Binary cross-entropy of sigmoid(logits) against labels in [0, 1], elementwise.

    .. math::
        \ell(z, y) = w_+\, y \operatorname{softplus}(-z) + (1 - y) \operatorname{softplus}(z)
        = -\left[w_+\, y \log \sigma(z) + (1 - y) \log(1 - \sigma(z))\right],

    a term with a zero coefficient being 0 even at an infinite logit: ``z = +inf`` with
    ``y = 1`` gives 0 and ``z = -inf`` with ``y = 1`` gives +inf, never NaN. The gradient
    in z is :math:`\sigma(z)(w_+ y + 1 - y) - w_+ y`, which is :math:`\sigma(z) - y` for
    :math:`w_+ = 1`.

    Equals torch's ``binary_cross_entropy_with_logits(..., reduction='none',
    pos_weight=...)`` and ``optax.sigmoid_binary_cross_entropy``.

    Args:
      logits: any shape, floating dtype.
      labels: targets, the same shape.
      pos_weight: optional weight :math:`w_+` of the positive term, broadcastable to
        ``logits`` (torch's ``pos_weight``).

    Returns:
      ``logits``' shape, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: the shapes differ or ``pos_weight`` does not broadcast.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> z = jnp.array([0.0, jnp.inf, -jnp.inf])
      >>> loss = je.sigmoid_binary_cross_entropy(z, jnp.array([1.0, 1.0, 1.0]))
      >>> print(", ".join(f"{v:.4f}" for v in loss))
      0.6931, 0.0000, inf

    References:
      D. R. Cox, "The Regression Analysis of Binary Sequences", 1958.
    """
    z, y, pw = _sigmoid_inputs(logits, labels, pos_weight)
    return _sigmoid_xent(z, y, pw)


def multilabel_sigmoid_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    pos_weight: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Multi-label loss: the sum over classes of independent sigmoid cross-entropies.

    .. math::
        \ell(z, y) = \sum_{j \in \text{where}}
        w_{+,j}\, y_j \operatorname{softplus}(-z_j) + (1 - y_j) \operatorname{softplus}(z_j).

    Each class is its own Bernoulli variable (an image may hold a cat, a frog and a mouse
    at once). Masked-out classes take no part, whatever they hold.

    Args:
      logits: shape ``[..., K, ...]``, floating dtype.
      labels: targets in [0, 1], the same shape.
      axis: the class axis or axes summed over.
      where: optional boolean mask, broadcastable to ``logits`` or per-example.
      pos_weight: optional positive-term weights broadcastable to ``logits``.

    Returns:
      ``logits``' shape without ``axis``, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: shapes differ, ``axis`` is out of range, or ``pos_weight`` does not
        broadcast.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> logits = jnp.array([2.0, -1.0, 0.5])     # cat, frog, mouse
      >>> labels = jnp.array([1.0, 0.0, 1.0])
      >>> print(f"{je.multilabel_sigmoid_cross_entropy(logits, labels):.4f}")
      0.9143
    """
    z, y, pw = _sigmoid_inputs(logits, labels, pos_weight)
    axes = arguments.normalize_axes(axis, z.ndim)
    mask = arguments.normalize_where(where, z.shape, axes)
    if mask is not None:
        z, y = jnp.where(mask.full, z, 0), jnp.where(mask.full, y, 0)
        pw = None if pw is None else jnp.where(mask.full, pw, 1)
    return arguments.masked_sum(_sigmoid_xent(z, y, pw), axes, mask)


def binary_cross_entropy(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    r"""Binary cross-entropy of predicted probabilities against labels, elementwise.

    .. math::
        \ell(a, y) = -\left[y \log a + (1 - y) \log(1 - a)\right],
        \qquad 0 \log 0 = 0.

    +inf for a confidently wrong prediction (a = 0 with y > 0, or a = 1 with y < 1); no
    clamping (torch clamps each log at -100). Prefer ``sigmoid_binary_cross_entropy`` on
    logits, which is stable where this cannot be. The gradient in ``probs`` is
    :math:`(a - y) / (a (1 - a))`, the terms with a zero label weight contributing exactly 0.

    Args:
      probs: predicted probabilities a in [0, 1], any shape.
      labels: targets y in [0, 1], the same shape.

    Returns:
      An array of ``probs``' shape in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued.
      ValueError: the shapes differ.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.binary_cross_entropy(0.7, 1.0):.4f}")
      0.3567

    References:
      I. Goodfellow, Y. Bengio and A. Courville, "Deep Learning", sec. 6.2.2.2.
    """
    a = arguments.probabilities(probs, "probs")
    y = arguments.probabilities(labels, "labels")
    arguments.require_same_shape(a, y, "probs", "labels")
    dtype = arguments.compute_dtype(a, y)
    a, y = a.astype(dtype), y.astype(dtype)
    return negated(xlogy(y, a) + xlogy(1 - y, 1 - a))
