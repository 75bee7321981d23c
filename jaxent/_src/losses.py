r"""Losses and measures on logits: softmax and sigmoid cross-entropies, entropy and KL.

All are computed from max-shifted logits (log-sum-exp stable), in at least float32, and
carry ``jax.custom_jvp`` rules written from the closed-form derivatives, so forward mode,
reverse mode, ``jax.hessian`` and ``vmap`` all work and no NaN arises from a -inf logit.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from . import checks
from .numerics import ShiftedLogits, _is_zero, softmax_xent, softmax_xent_int


class _ClassAxis:
    """Logits laid out for a reduction over one class axis, with the mask and class count."""

    def __init__(self, logits: jax.Array, axis: checks.Axis, where, name: str = "logits"):
        checks.require_float(logits, name)
        axes = checks.normalize_axes(axis, logits.ndim)
        mask = checks.normalize_where(where, logits.shape, axes)
        self.class_shape = tuple(logits.shape[a] for a in axes)
        self.num_classes = math.prod(self.class_shape)
        self.axes = axes
        self.flat = len(axes) > 1
        self.axis = logits.ndim - len(axes) if self.flat else axes[0]
        self.z = self.layout(logits)
        self.mask = None if mask is None else self.layout(mask)

    def layout(self, x: jax.Array) -> jax.Array:
        return checks.flatten_axes(x, self.axes) if self.flat else x

    def expand(self, x: jax.Array) -> jax.Array:
        """Inserts the class axis into a per-example array."""
        return jnp.expand_dims(x, self.axis)

    def along_classes(self, w: jax.Array) -> jax.Array:
        """Reshapes a [K] vector to broadcast along the class axis."""
        return w.reshape((self.num_classes,) + (1,) * (self.z.ndim - self.axis - 1))

    def clean(self, x: jax.Array, fill) -> jax.Array:
        return x if self.mask is None else jnp.where(self.mask, x, fill)

    def allowed_count(self) -> jax.Array | int:
        if self.mask is None:
            return self.num_classes
        return jnp.sum(self.mask, axis=self.axis, keepdims=True)


def _smooth(t: jax.Array, ca: _ClassAxis, label_smoothing: float) -> jax.Array:
    if label_smoothing == 0:
        return t
    k = ca.allowed_count()
    uniform = label_smoothing / jnp.maximum(k, 1)
    return ca.clean((1 - label_smoothing) * t + uniform, 0)


def _finish(loss, lse, z_loss):
    if z_loss == 0:
        return loss
    lse = jnp.where(lse == -jnp.inf, 0, lse)
    return loss + z_loss * jnp.square(lse)


def _common_options(label_smoothing, z_loss):
    e = checks.static_float(label_smoothing, "label_smoothing", 0.0, 1.0, high_open=True)
    z = checks.static_float(z_loss, "z_loss", 0.0, math.inf, high_open=True)
    return e, z


def softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
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
    included). Label mass on a -inf logit gives +inf. A +inf allowed logit gives +inf when
    all label mass lies on finite logits and NaN otherwise (the limit is undefined); a NaN
    allowed logit gives NaN. Labels are not renormalised. The gradient in the logits is
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
      class_weights: optional per-class weights, shape ``[K]``.

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
    logits = checks.as_array(logits, "logits")
    labels = checks.as_array(labels, "labels")
    checks.require_float(logits, "logits")
    checks.require_real(labels, "labels")
    checks.require_same_shape(logits, labels, "logits", "labels")
    e, zeta = _common_options(label_smoothing, z_loss)
    ca = _ClassAxis(logits, axis, where)
    weights = checks.class_weight_array(class_weights, ca.class_shape)
    dtype = checks.compute_dtype(logits, labels)
    z = ca.z.astype(dtype)
    t = _smooth(ca.clean(ca.layout(labels).astype(dtype), 0), ca, e)
    if weights is not None:
        t = t * ca.along_classes(weights.astype(dtype))
    loss, lse = softmax_xent(ca.clean(z, 0), t, ca.mask, ca.axis)
    return _finish(loss, lse, zeta)


def softmax_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
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
      >>> print(jnp.round(loss, 4))
      [0.2761 0.    ]

    References:
      PyTorch, ``torch.nn.functional.cross_entropy``.
    """
    logits = checks.as_array(logits, "logits")
    labels = checks.as_array(labels, "labels")
    checks.require_float(logits, "logits")
    checks.require_integer(labels, "labels")
    e, zeta = _common_options(label_smoothing, z_loss)
    ca = _ClassAxis(logits, axis, where)
    expected = tuple(s for i, s in enumerate(logits.shape) if i not in ca.axes)
    if labels.shape != expected:
        raise ValueError(
            f"`labels` must have the logits' shape without the class axis: logits.shape="
            f"{logits.shape} with axis={axis!r} needs labels.shape={expected}, got "
            f"{labels.shape}."
        )
    if ignore_index is not None and not isinstance(ignore_index, int):
        raise TypeError(f"`ignore_index` must be a Python int or None, got {ignore_index!r}.")
    weights = checks.class_weight_array(class_weights, ca.class_shape)
    dtype = checks.compute_dtype(logits)
    z = ca.z.astype(dtype)
    k = ca.num_classes

    bad = (labels < 0) | (labels >= k)
    if ca.mask is None and e == 0:
        # One-hot targets, no class mask, no smoothing: the target array is never formed.
        ignored = None if ignore_index is None else labels == ignore_index
        w = jnp.ones(labels.shape, dtype)
        if weights is not None:
            w = weights.astype(dtype).reshape(-1)[jnp.clip(labels, 0, k - 1)]
        if ignored is not None:
            bad = bad & ~ignored
            w = jnp.where(ignored, 0, w)
        w = jnp.where(bad, jnp.nan, w)
        loss, lse = softmax_xent_int(ca.z, labels, w, ignored, ca.axis)
        return _finish(loss, lse, zeta)

    mask = ca.mask
    if ignore_index is not None:
        ignored = ca.expand(labels == ignore_index)
        bad = bad & (labels != ignore_index)
        mask = ~ignored if mask is None else mask & ~ignored
    ca.mask = mask if mask is None else jnp.broadcast_to(mask, z.shape)

    classes = jax.lax.broadcasted_iota(labels.dtype, z.shape, ca.axis)
    t = (classes == ca.expand(labels)).astype(dtype)
    t = _smooth(ca.clean(t, 0), ca, e)
    if weights is not None:
        t = t * ca.along_classes(weights.astype(dtype))
    t = jnp.where(ca.expand(bad), jnp.nan, t)
    loss, lse = softmax_xent(ca.clean(z, 0), t, ca.mask, ca.axis)
    return _finish(loss, lse, zeta)


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
    if not _is_zero(dz):
        dout = dout + (jax.nn.sigmoid(z) * (a + 1 - y) - a) * dz
    if not _is_zero(dy):
        sp_neg = jax.nn.softplus(-z)
        pos = sp_neg if pw is None else jnp.where(pw != 0, pw * sp_neg, 0)
        dout = dout + (pos - jax.nn.softplus(z)) * dy
    if pw is not None and not _is_zero(dpw):
        dout = dout + jnp.where(y != 0, y * jax.nn.softplus(-z), 0) * dpw
    return out, dout


_sigmoid_xent.defjvp(_sigmoid_xent_jvp, symbolic_zeros=True)


def _sigmoid_inputs(logits, labels, pos_weight):
    logits = checks.as_array(logits, "logits")
    labels = checks.as_array(labels, "labels")
    checks.require_float(logits, "logits")
    checks.require_real(labels, "labels")
    checks.require_same_shape(logits, labels, "logits", "labels")
    arrays = [logits, labels]
    if pos_weight is not None:
        pos_weight = checks.as_array(pos_weight, "pos_weight")
        checks.require_real(pos_weight, "pos_weight")
        try:
            ok = jnp.broadcast_shapes(pos_weight.shape, logits.shape) == logits.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"`pos_weight` of shape {pos_weight.shape} must broadcast to the logits' "
                f"shape {logits.shape} (e.g. one weight per class on the last axis)."
            )
        arrays.append(pos_weight)
    dtype = checks.compute_dtype(*arrays)
    pw = None if pos_weight is None else jnp.broadcast_to(pos_weight, logits.shape).astype(dtype)
    return logits.astype(dtype), labels.astype(dtype), pw


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
      >>> print(je.sigmoid_binary_cross_entropy(z, jnp.array([1.0, 1.0, 1.0])))
      [0.6931472       0.       inf]

    References:
      D. R. Cox, "The Regression Analysis of Binary Sequences", 1958.
    """
    z, y, pw = _sigmoid_inputs(logits, labels, pos_weight)
    return _sigmoid_xent(z, y, pw)


def multilabel_sigmoid_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
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
    axes = checks.normalize_axes(axis, z.ndim)
    mask = checks.normalize_where(where, z.shape, axes)
    if mask is not None:
        z, y = jnp.where(mask, z, 0), jnp.where(mask, y, 0)
        pw = None if pw is None else jnp.where(mask, pw, 1)
    terms = _sigmoid_xent(z, y, pw)
    if mask is not None:
        terms = jnp.where(mask, terms, 0)
    return jnp.sum(terms, axis=axes)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _softmax_entropy(z, mask, axis):
    sh = ShiftedLogits(z, mask, axis)
    return -jnp.sum(sh.p * sh.log_p(), axis=axis)


def _softmax_entropy_jvp(axis, primals, tangents):
    z, mask = primals
    dz, _ = tangents
    sh = ShiftedLogits(z, mask, axis)
    h = -jnp.sum(sh.p * sh.log_p(), axis=axis, keepdims=True)
    grad = -sh.p * (sh.log_p() + h)
    return jnp.squeeze(h, axis), jnp.sum(grad * dz, axis=axis)


_softmax_entropy.defjvp(_softmax_entropy_jvp)


def entropy_from_logits(
    logits: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Entropy of softmax(logits), computed from the logits without forming log(0).

    .. math::
        H(\operatorname{softmax}(z)) = \operatorname{lse}(z) - \sum_j p_j z_j,
        \qquad \frac{\partial H}{\partial z_k} = -p_k (\log p_k + H).

    -inf logits are classes of probability 0: they contribute 0 and get gradient 0. A fully
    masked row gives 0. A +inf or NaN allowed logit gives NaN.

    Args:
      logits: shape ``[..., K, ...]``, floating dtype.
      axis: the class axis, or a tuple of axes flattened together.
      where: optional boolean mask, broadcastable to ``logits`` or per-example.
      base: logarithm base (static); None for nats.

    Returns:
      ``logits``' shape without ``axis``, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: ``axis`` is out of range, ``where`` has the wrong shape, or ``base`` is
        invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(f"{je.entropy_from_logits(jnp.array([0.0, 0.0, -jnp.inf]), base=2):.4f}")
      1.0000
    """
    logits = checks.as_array(logits, "logits")
    ca = _ClassAxis(logits, axis, where)
    ln_b = checks.log_base(base)
    z = ca.z.astype(checks.compute_dtype(logits))
    h = _softmax_entropy(ca.clean(z, 0), ca.mask, ca.axis)
    return h if ln_b is None else h / ln_b


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _softmax_kl(a, b, mask, axis):
    return _softmax_kl_parts(a, b, mask, axis)[0]


def _softmax_kl_parts(a, b, mask, axis):
    sa, sb = ShiftedLogits(a, mask, axis), ShiftedLogits(b, mask, axis)
    positive = sa.p != 0  # NaN included: a NaN logit must give NaN, not be dropped
    log_q = jnp.where(positive, sb.d - sb.log_s, 0)
    ratio = sa.log_p() - log_q
    d = jnp.sum(jnp.where(positive, sa.p * ratio, 0), axis=axis, keepdims=True)
    return jnp.squeeze(d, axis), d, ratio, sa, sb


def _softmax_kl_jvp(axis, primals, tangents):
    a, b, mask = primals
    da, db, _ = tangents
    out, d, ratio, sa, sb = _softmax_kl_parts(a, b, mask, axis)
    dout = jnp.zeros_like(out)
    if not _is_zero(da):
        dout = dout + jnp.sum(sa.p * (ratio - d) * da, axis=axis)
    if not _is_zero(db):
        total = jnp.sum(sa.p, axis=axis, keepdims=True)
        dout = dout + jnp.sum((sb.p * total - sa.p) * db, axis=axis)
    return out, dout


_softmax_kl.defjvp(_softmax_kl_jvp, symbolic_zeros=True)


def kl_divergence_from_logits(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""KL divergence :math:`D(\operatorname{softmax}(a) \,\|\, \operatorname{softmax}(b))`.

    .. math::
        D = \sum_{j:\,p_j > 0} p_j (\log p_j - \log q_j), \qquad
        \frac{\partial D}{\partial a_k} = p_k (\log p_k - \log q_k - D), \qquad
        \frac{\partial D}{\partial b_k} = q_k - p_k.

    The reference distribution's logits come first. Classes with a -inf logit in ``a``
    contribute 0 and get gradient 0; a -inf logit in ``b`` where ``a``'s is finite gives
    +inf. A fully masked row gives 0.

    Args:
      p_logits: logits of the reference distribution p, shape ``[..., K, ...]``.
      q_logits: logits of the approximating distribution q, the same shape.
      axis: the class axis, or a tuple of axes flattened together.
      where: optional boolean mask, broadcastable or per-example.
      base: logarithm base (static); None for nats.

    Returns:
      The per-example divergence, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: the shapes differ, ``axis`` is out of range, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> a, b = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> print(f"{je.kl_divergence_from_logits(a, b, base=2):.4f}")
      0.7370
    """
    p_logits = checks.as_array(p_logits, "p_logits")
    q_logits = checks.as_array(q_logits, "q_logits")
    checks.require_float(q_logits, "q_logits")
    checks.require_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    ca = _ClassAxis(p_logits, axis, where, name="p_logits")
    ln_b = checks.log_base(base)
    dtype = checks.compute_dtype(p_logits, q_logits)
    a = ca.clean(ca.z.astype(dtype), 0)
    b = ca.clean(ca.layout(q_logits).astype(dtype), 0)
    d = _softmax_kl(a, b, ca.mask, ca.axis)
    return d if ln_b is None else d / ln_b
