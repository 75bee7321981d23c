r"""Vocabulary-parallel losses: the class axis split over devices, inside ``jax.shard_map``.

Each device holds the logits (or the output weight) of one contiguous shard of the V
classes: with n shards of V/n classes, shard i (``lax.axis_index`` over the named mesh axes,
row-major for a tuple of names, as ``PartitionSpec(..., names)`` splits an axis) holds the
classes :math:`[i V/n, (i + 1) V/n)`. A softmax needs only a few numbers per row from the
other shards: the row maximum (one ``pmax``) and a few row sums (one ``psum`` of a tuple):
the sum of exponentials, the label's logit, the smoothing sum. Each collective carries
O(rows) values; no ``[rows, V]`` or ``[rows, V/n]`` array crosses devices.

Derivatives. Every function is exact in the shard it holds; what crosses devices in the
forward pass is a ``psum``, and the derivative rules treat it as one, so that each
gradient that is a sum over shards is summed exactly once:

- under ``check_vma=True`` (the default of ``jax.shard_map``) an input that is the same on
  every shard (logits or class weights replicated over some mesh axis) is cast to varying
  before use, and JAX transposes that cast into the ``psum`` of its gradient; the fused
  loss's backward pass sums the hidden states' gradient itself, a token tile at a time;
- under ``check_vma=False`` the backward pass sums the incoming per-row cotangents over the
  shards, as the transpose of the forward ``psum`` does, and ``shard_map`` sums the
  gradients of unsplit inputs on the way out. As with JAX's own ``psum``, differentiate
  outside the ``shard_map`` in this mode.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .. import arguments
from ..arguments import LabelStatus, SoftmaxOptions
from ..numerics import held_at_zero, is_zero, log_or_neg_inf, weighted_targets
from ..softmax import _plain_derivatives, own_derivatives
from . import streaming
from .stats import RowStats, finite_or_zero, grad_coefficients, log_sum_exp, loss_from_stats

AxisName = str | tuple[str, ...]


class _Shards(NamedTuple):
    """The mesh axes the class axis is split over, as seen from inside ``shard_map``."""

    names: tuple[str, ...]
    #: The number of shards, n.
    size: int
    #: This device's shard, i (traced).
    position: jax.Array
    #: Whether ``shard_map`` checks varying types (``check_vma=True``).
    checked: bool

    def vary(self, *xs: jax.Array | None, like: tuple[jax.Array, ...] = ()) -> list:
        """``xs`` cast to vary alike (checked mode): over the shard axes and every axis that
        one of them (or of ``like``) varies over, so that JAX sums each one's gradient over
        the axes it is replicated on, once."""
        if not self.checked:
            return list(xs)
        types = [jax.typeof(x).manual_axis_type.varying for x in xs + like if x is not None]
        axes = set(self.names).union(*types)
        return [None if x is None else _pcast(x, axes) for x in xs]


def _pcast(x: jax.Array, axes: set) -> jax.Array:
    missing = tuple(sorted(axes - jax.typeof(x).manual_axis_type.varying))
    return lax.pcast(x, missing, to="varying") if missing else x


def _shards(axis_name: object) -> _Shards:
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    if not names or not all(isinstance(a, str) for a in names):
        raise TypeError(
            f"`axis_name` must be a mesh axis name or a tuple of names, got {axis_name!r}."
        )
    try:
        size = lax.axis_size(names)
    except NameError as err:
        raise ValueError(
            f"`axis_name`={axis_name!r} is not an axis of an enclosing `jax.shard_map`: call "
            "this function inside shard_map, with the class axis split over that mesh axis."
        ) from err
    position = lax.axis_index(names)
    checked = set(names) <= jax.typeof(position).manual_axis_type.varying
    return _Shards(names, size, position, checked)


def _row_sums(names: tuple[str, ...], *terms: jax.Array) -> list[jax.Array]:
    """The sums over all shards' classes of each ``[..., V/n]`` term: one ``psum``."""
    return list(lax.psum(tuple(jnp.sum(t, axis=-1, keepdims=True) for t in terms), names))


class _Shifted:
    """Logits shifted by their row maximum over every shard (``pmax``), keepdims.

    Attributes:
      d: logits minus the shift; -inf at masked-out entries.
      e: exp(d), 0 at masked-out and -inf entries.
      shift: the row maximum over all shards, 0 where it is not finite.
      also: where ``also`` is given, its row maximum over all shards (masked as z), 0 where
        it is not finite.
    """

    def __init__(
        self,
        z: jax.Array,
        mask: jax.Array | None,
        names: tuple[str, ...],
        also: jax.Array | None = None,
    ):
        zm = z if mask is None else jnp.where(mask, z, -jnp.inf)
        tops = (
            [zm]
            if also is None
            else [zm, also if mask is None else jnp.where(mask, also, -jnp.inf)]
        )
        tops = [lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True)) for x in tops]
        tops = lax.pmax(tops, names)  # one collective for both maxima
        self.shift = finite_or_zero(tops[0])
        if also is not None:
            self.also = finite_or_zero(tops[1])
        self.z = zm
        self.d = zm - self.shift
        self.e = jnp.exp(self.d)

    def times_d(self, t: jax.Array) -> jax.Array:
        """t d, 0 where t = 0; t z - t shift where z - shift overflowed (finite logits more
        than the largest float apart), finite for t below 1."""
        over = (self.d == -jnp.inf) & (self.z > -jnp.inf)
        td = jnp.where(over, t * self.z - t * self.shift, t * self.d)
        return jnp.where(t != 0, td, 0)


def _probabilities(e: jax.Array, s: jax.Array) -> jax.Array:
    """e / s, 0 in a row with no mass (s = 0)."""
    return e * jnp.where(s > 0, 1 / jnp.where(s > 0, s, 1), 0)


# The integer-label cross-entropy.


def vocab_parallel_softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis_name: AxisName,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    class_weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Integer-label softmax cross-entropy of logits whose classes are split over devices.

    Called inside ``jax.shard_map``, each device holding the shard ``[..., V/n]`` of the
    logits' last (class) axis, split over the mesh axis (or axes) ``axis_name``. The value
    is that of ``softmax_cross_entropy_with_integer_labels`` on the whole logits:

    .. math::
        \ell(z, c) = \sum_{j \in \text{where}} w_j t_j\,(\operatorname{lse}(z) - z_j)
        + \zeta \operatorname{lse}(z)^2,
        \qquad t = (1 - \epsilon)\,e_c + \epsilon / K,

    over all V classes (K of them allowed by ``where``), with terms of zero weight dropped
    (even at a -inf logit). A row whose label equals ``ignore_index``, or that ``where``
    excludes, gives 0 with gradient 0, whatever its logits hold; any other label outside
    ``[0, V)`` gives NaN. Label mass on a -inf logit gives +inf. Only per-row values cross
    devices (a ``pmax`` and one ``psum``); every device returns the same loss.

    Args:
      logits: this device's shard of the logits, ``[..., V/n]``, floating dtype.
      labels: GLOBAL class indices in ``[0, V)``, ``logits``' shape without the last axis
        (the same on every shard).
      axis_name: the mesh axis name, or tuple of names, the classes are split over (static).
      where: optional boolean mask: this device's shard of a per-class mask broadcastable to
        ``logits``, or a per-row mask of ``labels``' shape.
        A shard that is both (``[V/n]`` on ``N = V/n`` rows) raises ValueError as
        ambiguous: pass a per-class mask as ``[1, V]`` (split over the last axis) or a
        per-row one as ``where[..., None]``.
      label_smoothing: :math:`\epsilon \in [0, 1)` (static), spread over all allowed classes.
      z_loss: :math:`\zeta \ge 0` (static).
      class_weights: this device's shard of the per-class weights, ``[V/n]``.
      ignore_index: a label value marking rows to skip (static), or None.

    Returns:
      The per-row loss, ``labels``' shape, float32 for half-precision logits, the same on
      every shard of ``axis_name``.

    Raises:
      TypeError: the logits are not floating, the labels not integer, ``where`` not
        boolean, or ``axis_name`` not a name or tuple of names.
      ValueError: a shape does not match, an option is out of range, or ``axis_name`` is
        not an axis of an enclosing ``shard_map``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> from jax.sharding import AxisType, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("model",), axis_types=(AxisType.Auto,))
      >>> logits = jnp.array([[1.2, -0.8, -0.5, 0.3], [0.9, -1.2, 1.1, 0.0]])
      >>> labels = jnp.array([0, -100])
      >>> @jax.jit
      ... @jax.shard_map(mesh=mesh, in_specs=(P(None, "model"), P()), out_specs=P())
      ... def loss_fn(logits, labels):
      ...     return je.parallel.vocab_parallel_softmax_cross_entropy(
      ...         logits, labels, axis_name="model", ignore_index=-100)
      >>> print(", ".join(f"{v:.4f}" for v in loss_fn(logits, labels)))
      0.5450, 0.0000

    References:
      M. Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models
      Using Model Parallelism", 2019 (the vocabulary-parallel cross-entropy).
    """
    logits = arguments.as_array(logits, "logits")
    labels = arguments.as_array(labels, "labels")
    arguments.require_float(logits, "logits")
    arguments.require_integer(labels, "labels")
    opts = SoftmaxOptions.validate(label_smoothing, z_loss, ignore_index)
    ca = arguments.ClassAxis(logits, -1, where)
    if labels.shape != ca.batch_shape:
        raise ValueError(
            f"`labels` must have the logits' shape without the class axis: logits.shape="
            f"{logits.shape} needs labels.shape={ca.batch_shape}, got {labels.shape}."
        )
    weights = arguments.class_weight_array(class_weights, ca.class_shape)
    sh = _shards(axis_name)
    local = ca.num_classes
    dtype = arguments.compute_dtype(logits)
    allowed: jax.Array | int = local * sh.size
    row_mask = ca.row_mask
    class_mask = ca.mask if row_mask is None else None
    if class_mask is not None:
        # Smoothing spreads over the allowed classes of every shard; a row with none is
        # excluded as a whole.
        total = lax.psum(jnp.sum(class_mask, axis=-1, dtype=jnp.int32), sh.names)
        allowed, row_mask = total, total > 0
    status = arguments.label_status(
        labels, local * sh.size, ignore_index=opts.ignore_index, row_mask=row_mask
    )
    classes = sh.position * local + lax.broadcasted_iota(jnp.int32, (local,), 0)
    t = opts.on_label * (classes == status.target[..., None]).astype(dtype)
    if opts.label_smoothing:
        count = allowed if isinstance(allowed, int) else allowed[..., None]
        t = t + opts.per_class(count)
    if weights is not None:
        t = weighted_targets(t, weights.astype(dtype))
    keep = ca.expand(~status.skipped)
    mask = keep if class_mask is None else class_mask & keep
    # Masked classes take no part (their weights, even NaN, included); an invalid label's
    # row carries NaN.
    t = jnp.where(mask, t, 0)
    t = jnp.where(ca.expand(status.invalid), jnp.nan, t)
    mask = jnp.broadcast_to(mask, ca.z.shape)
    z, t = sh.vary(jnp.where(mask, ca.z.astype(dtype), 0), t)
    loss, lse = _xent(z, t, mask, sh.names)
    return opts.add_z_loss(loss, lse)


def _xent_parts(z, t, mask, names):
    sm = _Shifted(z, mask, names)
    s, total, td = _row_sums(names, sm.e, t, sm.times_d(t))
    log_s = log_or_neg_inf(s)
    # sum_j t_j (lse - z_j), shifted: total log s - sum_j t_j d_j; label mass on an empty
    # row is +inf, none is 0.
    gap = jnp.where(total != 0, total * log_s, 0) - td
    loss = jnp.where(log_s == -jnp.inf, jnp.where(total == 0, 0, jnp.inf), gap)
    loss = jnp.where(jnp.isnan(total), jnp.nan, loss)
    return loss[..., 0], (log_s + sm.shift)[..., 0], sm, s, log_s, total


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _xent(z, t, mask, names):
    loss, lse, *_ = _xent_parts(z, t, mask, names)
    return loss, lse


def _xent_jvp(names, primals, tangents):
    z, t, mask = primals
    dz, dt, _ = tangents
    loss, lse, sm, s, log_s, total = _xent_parts(z, t, mask, names)
    dloss = jnp.zeros_like(z)
    dlse = jnp.zeros_like(z)
    if not is_zero(dz):
        p = _probabilities(sm.e, s)
        dloss = dloss + (p * total - t) * dz
        dlse = dlse + p * dz
    if not is_zero(dt):
        # d loss / d t_j = lse - z_j; reported as 0 at excluded (-inf or masked) classes.
        # Where z_j - shift overflowed and t_j != 0, the tangent is dt log s - (dt z -
        # dt shift), as in the value (``times_d``): 0 for a zero dt. Where t_j = 0 there it
        # is taken as 0: reverse mode would multiply the overflowed slope by the zero
        # slope of t_j in its weight (NaN). Each branch's coefficients are 0 where the
        # other is taken (reverse mode multiplies them by a zero cotangent).
        far = (sm.d == -jnp.inf) & (sm.z > -jnp.inf)
        over = far & (t != 0)
        slope = jnp.where((sm.z == -jnp.inf) | far, 0, log_s - sm.d)
        ls_o, z_o, sh_o = (jnp.where(over, x, 0) for x in (log_s, sm.z, sm.shift))
        dloss = dloss + (slope * dt + (ls_o * dt - (z_o * dt - sh_o * dt)))
    dloss, dlse = _row_sums(names, dloss, dlse)
    return (loss, lse), (dloss[..., 0], dlse[..., 0])


_xent.defjvp(_xent_jvp, symbolic_zeros=True)


# Entropy and KL divergence from logits.


def _logits_and_mask(logits, where, name, dtype):
    ca = arguments.ClassAxis(logits, -1, where, name=name)
    return ca, ca.clean(ca.z.astype(dtype), 0)


def vocab_parallel_entropy_from_logits(
    logits: jax.typing.ArrayLike,
    *,
    axis_name: AxisName,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Entropy of softmax(logits), the classes split over devices.

    Called inside ``jax.shard_map`` with this device's shard ``[..., V/n]`` of the logits'
    last axis; the value is ``entropy_from_logits`` of the whole logits:

    .. math::
        H(\operatorname{softmax}(z)) = \operatorname{lse}(z) - \sum_j p_j z_j,
        \qquad \frac{\partial H}{\partial z_k} = -p_k (\log p_k + H),

    computed from two row sums over all shards. -inf logits are classes of probability 0
    (value and gradient 0); a fully masked row, or one with no finite logit, gives 0; a
    +inf or NaN allowed logit gives NaN, and NaN gradients throughout its row.

    Args:
      logits: this device's shard of the logits, ``[..., V/n]``, floating dtype.
      axis_name: the mesh axis name, or tuple of names, the classes are split over (static).
      where: optional boolean mask: this device's shard of a per-class mask, or per-row.
        A shard that is both (``[V/n]`` on ``N = V/n`` rows) raises ValueError as
        ambiguous: pass a per-class mask as ``[1, V]`` (split over the last axis) or a
        per-row one as ``where[..., None]``.
      base: logarithm base (static); None for nats.

    Returns:
      The per-row entropy, ``logits``' shape without the last axis, float32 for
      half-precision logits, the same on every shard.

    Raises:
      TypeError: the logits are not floating, or ``axis_name`` is not a name or tuple.
      ValueError: ``where`` has the wrong shape, ``base`` is invalid, or ``axis_name`` is
        not an axis of an enclosing ``shard_map``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> from jax.sharding import AxisType, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("model",), axis_types=(AxisType.Auto,))
      >>> @jax.jit
      ... @jax.shard_map(mesh=mesh, in_specs=P(None, "model"), out_specs=P())
      ... def entropy_fn(logits):
      ...     return je.parallel.vocab_parallel_entropy_from_logits(
      ...         logits, axis_name="model", base=2)
      >>> print(f"{entropy_fn(jnp.array([[0.0, 0.0, -jnp.inf, 0.0]]))[0]:.4f}")
      1.5850

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", ch. 2.
    """
    logits = arguments.as_array(logits, "logits")
    ln_b = arguments.log_base(base)
    sh = _shards(axis_name)
    ca, z = _logits_and_mask(logits, where, "logits", arguments.compute_dtype(logits))
    (z,) = sh.vary(z)
    h = _entropy(z, ca.mask, sh.names)
    return arguments.in_units(h, ln_b)


def _entropy_parts(z, mask, names):
    sm = _Shifted(z, mask, names)
    s, ed = _row_sums(names, sm.e, jnp.where(sm.e > 0, sm.e * sm.d, 0))
    log_s = log_or_neg_inf(s)
    h = jnp.where(s == 0, 0, log_s - ed / jnp.where(s == 0, 1, s))
    return h, sm, s, log_s


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _entropy(z, mask, names):
    return _entropy_parts(z, mask, names)[0][..., 0]


def _entropy_jvp(names, primals, tangents):
    z, mask = primals
    dz, _ = tangents
    h, sm, s, log_s = _entropy_parts(z, mask, names)
    # h with this rule's derivatives (``own_derivatives``), and log p only where p > 0
    # (-inf or NaN elsewhere: NaN in reverse over reverse).
    h = own_derivatives(h, lambda z_, mask_: _entropy(z_, mask_, names)[..., None], z, mask)
    p = _probabilities(sm.e, s)
    grad = jnp.where(p > 0, -p * (jnp.where(p > 0, sm.d - log_s, 0) + h), 0)
    # A +inf or NaN logit: NaN throughout the row, as on one device.
    grad = jnp.where(jnp.isnan(h), jnp.nan, grad)
    (dh,) = _row_sums(names, grad * dz)
    return h[..., 0], dh[..., 0]


_entropy.defjvp(_entropy_jvp)


def vocab_parallel_kl_divergence_from_logits(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis_name: AxisName,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""KL divergence :math:`D(\operatorname{softmax}(a) \,\|\, \operatorname{softmax}(b))`,
    the classes split over devices.

    Called inside ``jax.shard_map`` with this device's shards ``[..., V/n]`` of both logits'
    last axis; the value is ``kl_divergence_from_logits`` of the whole logits:

    .. math::
        D = \sum_{j:\,p_j > 0} p_j (\log p_j - \log q_j), \qquad
        \frac{\partial D}{\partial a_k} = p_k (\log p_k - \log q_k - D), \qquad
        \frac{\partial D}{\partial b_k} = q_k - p_k,

    computed from three row sums over all shards. Classes with a -inf logit in ``a``
    contribute 0 and get gradient 0; a -inf logit in ``b`` where ``a``'s is finite, or a
    +inf one, gives +inf, with every derivative 0 in that row. A fully masked row gives 0.
    Where D is NaN (a NaN logit, or +inf in ``a``) the gradient in ``a`` is NaN throughout
    the row, as on one device; a value that rounding leaves below 0 is returned as 0, with
    the derivatives above, as on one device.

    Args:
      p_logits: this device's shard of the reference distribution's logits, ``[..., V/n]``.
      q_logits: this device's shard of the approximating distribution's logits, the same
        shape.
      axis_name: the mesh axis name, or tuple of names, the classes are split over (static).
      where: optional boolean mask: this device's shard of a per-class mask, or per-row.
        A shard that is both (``[V/n]`` on ``N = V/n`` rows) raises ValueError as
        ambiguous: pass a per-class mask as ``[1, V]`` (split over the last axis) or a
        per-row one as ``where[..., None]``.
      base: logarithm base (static); None for nats.

    Returns:
      The per-row divergence, float32 for half-precision logits, the same on every shard.

    Raises:
      TypeError: the logits are not floating, or ``axis_name`` is not a name or tuple.
      ValueError: the shapes differ, ``where`` has the wrong shape, ``base`` is invalid,
        or ``axis_name`` is not an axis of an enclosing ``shard_map``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> from jax.sharding import AxisType, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("model",), axis_types=(AxisType.Auto,))
      >>> a, b = jnp.log(jnp.array([[0.5, 0.5]])), jnp.log(jnp.array([[0.9, 0.1]]))
      >>> @jax.jit
      ... @jax.shard_map(mesh=mesh, in_specs=P(None, "model"), out_specs=P())
      ... def kl_fn(a, b):
      ...     return je.parallel.vocab_parallel_kl_divergence_from_logits(
      ...         a, b, axis_name="model", base=2)
      >>> print(f"{kl_fn(a, b)[0]:.4f}")
      0.7370

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency", 1951.
    """
    p_logits = arguments.as_array(p_logits, "p_logits")
    q_logits = arguments.as_array(q_logits, "q_logits")
    arguments.require_float(q_logits, "q_logits")
    arguments.require_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    ln_b = arguments.log_base(base)
    sh = _shards(axis_name)
    arguments.require_float(p_logits, "p_logits")
    dtype = arguments.compute_dtype(p_logits, q_logits)
    ca, a = _logits_and_mask(p_logits, where, "p_logits", dtype)
    a, b = sh.vary(a, ca.clean(ca.layout(q_logits).astype(dtype), 0))
    d = _kl(a, b, ca.mask, sh.names)
    # D >= 0: a value below 0 is rounding, held at 0 (as ``kl_divergence_from_logits``).
    return arguments.in_units(held_at_zero(d, d < 0), ln_b)


def _kl_parts(a, b, mask, names):
    sa = _Shifted(a, mask, names)
    # c: q's logit at p's mode (the largest there, for ties), found in the same pmax as b's
    # maximum. The gaps b - c are then small where p has its mass: measured from b's
    # maximum instead, a logit of q far above those (1e6, also where p is tiny but not 0)
    # made them all huge, and the gradient in a, p (log p - log q - D), lost every digit to
    # the cancellation with D.
    at_mode = jnp.where(sa.d == 0, b, -jnp.inf)
    sb = _Shifted(b, mask, names, also=at_mode)
    xc = b - sb.also
    # Terms where p > 0 (NaN included: a NaN logit of a must give NaN, not be dropped) and
    # b - c is finite: a +inf logit of b makes log s_b, and so D, +inf, a -inf one on p's
    # support is a hole (D = +inf), and a NaN one makes s_b NaN. Selected twice, so that the
    # derivatives of v (the rule's, at higher orders) meet no 0 times inf.
    used = (sa.e != 0) & (jnp.abs(xc) < jnp.inf)
    cross = jnp.where(used, sa.e * jnp.where(used, sa.d - xc, 0), 0)
    # A finite logit of a is mass of p, even where exp(d_a) underflows to 0: on a -inf
    # logit of b it makes D +inf.
    hole = jnp.where((sa.d > -jnp.inf) & (sb.d == -jnp.inf), 1.0, 0.0).astype(sa.e.dtype)
    s_a, s_b, cs, holes = _row_sums(names, sa.e, sb.e, cross, hole)
    log_sa, log_sb = log_or_neg_inf(s_a), log_or_neg_inf(s_b)
    # v = sum_j p_j (d_a,j - (b_j - c)); D = v + (m_b - c) - log s_a + log s_b, +inf where q
    # has no mass at all.
    v = cs / jnp.where(s_a == 0, 1, s_a)
    d = jnp.where(s_b == 0, jnp.inf, v + (sb.shift - sb.also) - log_sa + log_sb)
    d = jnp.where((holes > 0) & ~jnp.isnan(d), jnp.inf, d)  # a NaN logit stays NaN
    d = jnp.where(s_a == 0, 0, d)
    return d, sa, sb, s_a, s_b, log_sa, log_sb, xc, v


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _kl(a, b, mask, names):
    return _kl_parts(a, b, mask, names)[0][..., 0]


def _kl_rule_parts(a, b, mask, names):
    """``_kl_parts``' arrays (d, d_a, e_a, b - c, v, e_b, s_a, s_b) as they are,
    with the derivatives (higher orders) of rows where q has a +inf allowed logit taken as
    those of the rows read as 0: there D = +inf and every derivative is 0, and through
    their infinities differentiating the rule would meet 0 times inf. The extra row sum
    runs in the derivatives' pass only."""

    def arrays(a_, b_, mask_):
        d, sa, sb, s_a, s_b, _, _, xc, v = _kl_parts(a_, b_, mask_, names)
        return d, sa.d, sa.e, xc, v, sb.e, s_a, s_b

    def flat(a_, b_, mask_):
        inf = b_ == jnp.inf
        (n,) = _row_sums(names, (inf if mask_ is None else inf & mask_).astype(a_.dtype))
        return arrays(jnp.where(n > 0, 0, a_), jnp.where(n > 0, 0, b_), mask_)

    return _plain_derivatives(arrays, flat)(a, b, mask)


def _kl_jvp(names, primals, tangents):
    a, b, mask = primals
    da, db, _ = tangents
    d, xa, ea, xc, v, eb, s_a, s_b = _kl_rule_parts(a, b, mask, names)
    # As the entropy's rule: d with this rule's derivatives, the shifted logits where p > 0.
    d = own_derivatives(d, lambda *args: _kl(*args, names)[..., None], a, b, mask)
    # Rows of D = +inf (every derivative 0) read as finite placeholders, so that
    # differentiating this rule meets no 0 times inf there.
    gone = d == jnp.inf
    xa, xc, v = jnp.where(gone, 0, xa), jnp.where(gone, 0, xc), jnp.where(gone, 0, v)
    ea, eb = jnp.where(gone, 1, ea), jnp.where(gone, 1, eb)
    s_a, s_b = jnp.where(gone, 1, s_a), jnp.where(gone, 1, s_b)
    p = _probabilities(ea, s_a)
    dd = jnp.zeros_like(a)
    # As on one device: every derivative is 0 where D is +inf; a row whose D is NaN has
    # NaN gradients in a throughout, and one with a NaN sum (a NaN logit) has them in b too.
    if not is_zero(da):
        # p (log p - log q - D) = p ((a - m_a) - (b - c) - v): log s_a, log s_b and m_b - c
        # cancel exactly (see ``_kl_parts``). Only where p > 0 and D is finite (the rows
        # where D = +inf are zeroed below): infinite terms made reverse over reverse NaN.
        used = (p != 0) & (d != jnp.inf)
        grad = jnp.where(used, p * jnp.where(used, xa - xc - v, 0), 0)
        grad = jnp.where(d == jnp.inf, 0, grad)
        dd = dd + jnp.where(jnp.isnan(d), jnp.nan, grad) * da
    if not is_zero(db):
        grad = _probabilities(eb, s_b) * jnp.where(s_a > 0, 1, 0) - p
        grad = jnp.where(d == jnp.inf, 0, grad)
        nan_row = jnp.isnan(s_a) | (jnp.isnan(s_b) & (s_a != 0))
        dd = dd + jnp.where(nan_row, jnp.nan, grad) * db
    (dd,) = _row_sums(names, dd)
    return d[..., 0], dd[..., 0]


_kl.defjvp(_kl_jvp, symbolic_zeros=True)


# The fused linear + cross-entropy.


class _Config(NamedTuple):
    """Static options of the fused loss (hashable: the custom_vjp's nondiff argument)."""

    streaming: streaming._Config
    names: tuple[str, ...]
    num_classes: int
    checked: bool
    #: The mesh axes the backward pass sums the hidden states' gradient over, tile by tile
    #: (checked mode: the axes the other inputs vary over and ``hidden`` does not).
    sum_axes: tuple[str, ...]


def vocab_parallel_linear_softmax_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis_name: AxisName,
    bias: jax.typing.ArrayLike | None = None,
    chunk_size: int | None = None,
    token_chunk_size: int | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    where: jax.typing.ArrayLike | None = None,
    return_lse: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""``linear_softmax_cross_entropy`` with the output weight split over the vocabulary.

    Called inside ``jax.shard_map``: each device holds the hidden states of its tokens
    ``[..., D]`` (the same on every shard of ``axis_name``) and the shard ``[D, V/n]`` of the
    weight (and ``[V/n]`` of the bias) split over the mesh axis (or axes) ``axis_name``.
    With :math:`z = h W + b` (soft-capped to :math:`\kappa \tanh(z / \kappa)` when
    ``logit_softcap`` :math:`= \kappa` is given), each token's loss is

    .. math::
        \ell(h, c) = \operatorname{lse}(z) - (1 - \epsilon)\, z_c
        - \frac{\epsilon}{V} \sum_{j=1}^{V} z_j + \zeta \operatorname{lse}(z)^2,

    over all V classes: 0 with gradient 0 for a token whose label is ``ignore_index`` or
    that ``where`` excludes, NaN for any other label outside ``[0, V)``. Each device streams
    over its own vocabulary chunks (never forming its ``[tokens, V/n]`` logits); then the
    per-token log-sum-exps are merged (one ``pmax``, one ``psum`` with the label logit and
    the smoothing sum). The custom backward pass recomputes each block's logits and
    accumulates the gradients of the weight and bias shards and this shard's part of the
    hidden states' gradient, summed over the shards exactly once. Under ``check_vma=True``
    that sum is taken a ``[T, D]`` token tile at a time, so memory per device is about that
    of ``linear_softmax_cross_entropy`` on a ``[D, V/n]`` weight (under ``check_vma=False``
    ``shard_map`` sums the whole ``[N, D]`` gradient, one more such buffer).

    The default blocks are chosen from N, V/n and D to keep their scratch within 1% of
    this device's ``[N, V/n]`` logits, as large as that allows: modelling the compiler's
    scratch of ``[T, C]`` blocks as :math:`S = D\,(a C + b T) + T C` elements
    (:math:`(a, b) = (1, 3)` for the tile-by-tile backward pass of ``check_vma=True``,
    :math:`(3, 2)` for the chunk-by-chunk one), T = C = the largest multiple of 128 with
    :math:`S \le \max(N V / 100 n, 2^{20})` (4 MiB in float32 for small problems); when
    N (or V/n) is smaller, T = N (C = V/n) and the other side takes the rest. No block is
    smaller than 128 (or N, V/n), nor larger than ``linear_softmax_cross_entropy``'s
    defaults. At N = 8192, V = 256000, D = 4096 in float32 on 8 shards that is 128 x 128
    blocks, and the compiler's temp memory for ``value_and_grad`` is 8.2 MiB per device,
    0.82% of each device's 1000 MiB share of the logits (the single-device defaults,
    1024 x 1024, would need 68.2 MiB); compiled, not run, on the CPU backend, and
    ``tests/test_parallel.py`` guards < 1%.

    Args:
      hidden: the last hidden states, ``[..., D]``, floating dtype, replicated over
        ``axis_name`` (and possibly split over other mesh axes).
      weight: this device's shard of the output projection, ``[D, V/n]``.
      labels: GLOBAL class indices in ``[0, V)``, ``hidden``'s shape without ``D``.
      axis_name: the mesh axis name, or tuple of names, the vocabulary is split over (static).
      bias: this device's shard of the output bias, ``[V/n]``, or None.
      chunk_size: vocabulary columns per chunk within the shard (static), or None for
        the default above (fitted to ``token_chunk_size`` when that is given).
      token_chunk_size: tokens per tile (static), or None for the default above (fitted
        to ``chunk_size`` when that is given).
      ignore_index: a label value marking tokens to skip (static), or None.
      label_smoothing: :math:`\epsilon \in [0, 1)` (static), spread over all V classes.
      z_loss: :math:`\zeta \ge 0` (static).
      logit_softcap: :math:`\kappa > 0` (static, finite), or None for no cap.
      where: optional boolean mask of ``labels``' shape; False tokens give 0, gradient 0.
      return_lse: also return each token's log-sum-exp over the whole vocabulary.

    Returns:
      The per-token loss, ``labels``' shape, in the compute dtype (float32 for half
      precision), the same on every shard; with ``return_lse``, the pair ``(loss, lse)``.
      Gradients come back in each input's dtype.

    Raises:
      TypeError: an input has the wrong dtype, a static option the wrong type, or
        ``axis_name`` is not a name or tuple of names.
      ValueError: the shapes do not match, an option is out of range, or ``axis_name`` is
        not an axis of an enclosing ``shard_map``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> from jax.sharding import AxisType, PartitionSpec as P
      >>> mesh = jax.make_mesh((1,), ("model",), axis_types=(AxisType.Auto,))
      >>> kh, kw = jax.random.split(jax.random.key(0))
      >>> hidden = jax.random.normal(kh, (4, 8))
      >>> weight = jax.random.normal(kw, (8, 50)) / 4
      >>> labels = jnp.array([1, 7, 49, -100])
      >>> @jax.jit
      ... @jax.shard_map(mesh=mesh, in_specs=(P(), P(None, "model")), out_specs=P())
      ... def loss_fn(hidden, weight):
      ...     loss = je.parallel.vocab_parallel_linear_softmax_cross_entropy(
      ...         hidden, weight, labels, axis_name="model", ignore_index=-100)
      ...     return loss.sum() / 3
      >>> dense = je.softmax_cross_entropy_with_integer_labels(
      ...     hidden @ weight, labels, ignore_index=-100).sum() / 3
      >>> print(f"{loss_fn(hidden, weight):.4f} {dense:.4f}")
      4.0657 4.0657

    References:
      M. Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models
      Using Model Parallelism", 2019.
      E. Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2025.
    """
    args = streaming.prepare(
        hidden,
        weight,
        labels,
        bias=bias,
        chunk_size=chunk_size,
        token_chunk_size=token_chunk_size,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        logit_softcap=logit_softcap,
        where=where,
        return_lse=return_lse,
    )
    sh = _shards(axis_name)
    labels, n, d, local = args.labels, args.num_tokens, args.hidden.shape[-1], args.weight.shape[1]
    status = arguments.label_status(
        labels, local * sh.size, ignore_index=args.cfg.opts.ignore_index, row_mask=args.where
    )
    if n == 0:
        empty = jnp.zeros(labels.shape, args.dtype)
        return (empty, empty) if args.cfg.return_lse else empty
    flat = LabelStatus(*(x.reshape(n) for x in status))
    h = args.hidden.reshape(n, d)
    # The weight, bias and targets vary alike; the hidden states keep their type, and the
    # backward pass sums their gradient over the other axes a tile at a time (no [N, D]
    # partial sum is stored).
    w, b, target = sh.vary(args.weight, args.bias, flat.target - sh.position * local, like=(h,))
    sum_axes = ()
    if sh.checked:
        h_axes = jax.typeof(h).manual_axis_type.varying
        sum_axes = tuple(sorted(jax.typeof(target).manual_axis_type.varying - h_axes))
    # Default blocks within 1% of this shard's [N, V/n] logits, for the backward order used.
    chunk, tile = streaming.bounded_chunk_sizes(
        n,
        local,
        d,
        costs=streaming.BY_TILE_COSTS if sum_axes else streaming.BY_CHUNK_COSTS,
        chunk_size=chunk_size,
        token_chunk_size=token_chunk_size,
    )
    sc = args.cfg._replace(chunk=chunk, tile=tile)
    cfg = _Config(sc, sh.names, local * sh.size, sh.checked, sum_axes)
    # Staged (jit) so that forward mode meets custom_vjp's own error even in an eager
    # shard_map (whose eager evaluation of the linearized call fails to hash it).
    out = jax.jit(_fused, static_argnums=5)(h, w, b, flat, target, cfg)
    if args.cfg.return_lse:
        return out[0].reshape(labels.shape), out[1].reshape(labels.shape)
    return out.reshape(labels.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _fused(h, w, b, status: LabelStatus, target, cfg: _Config):
    return _fused_fwd(h, w, b, status, target, cfg)[0]


def _fused_fwd(h, w, b, status: LabelStatus, target, cfg: _Config):
    local = streaming.forward(h, w, b, target, cfg.streaming)
    # The per-shard log-sum-exps merged: lse = M + log sum_i exp(lse_i - M).
    # The shift is kept out of differentiation (``pmax`` has no derivative rule).
    top = lax.pmax(lax.stop_gradient(local.lse), cfg.names)
    shift = finite_or_zero(top)
    parts = [jnp.exp(local.lse - shift), local.z_label]
    if cfg.streaming.opts.label_smoothing:
        parts.append(local.z_sum)
    s, z_label, *z_sum = lax.psum(tuple(parts), cfg.names)
    lse = log_sum_exp(top, s)
    stats = RowStats(lse, z_label, z_sum[0] if z_sum else jnp.zeros_like(lse))
    loss = loss_from_stats(stats, status, cfg.streaming.opts, cfg.num_classes)
    # One [2, N] output, as in the single-device loss (exact grad of vmap).
    out = jnp.stack([loss, lse]) if cfg.streaming.return_lse else loss
    return out, (h, w, b, status, target, lse)


def _fused_bwd(cfg: _Config, residuals, cotangent):
    r"""Recomputes this shard's logits block by block and accumulates its gradients.

    Residuals, for N tokens, D features and V/n classes in this shard (the first three are
    the inputs themselves, not copies):

    - ``h``: the hidden states, ``[N, D]``, input dtype;
    - ``w``: this shard of the weight, ``[D, V/n]``; ``b``: of the bias, ``[V/n]``, or None;
    - ``status``: the labels' meaning, ``[N]`` int32 global class indices and two ``[N]``
      bool flags (token counted; label invalid);
    - ``target``: each label as a column of this shard (outside ``[0, V/n)`` when another
      shard holds it), ``[N]`` int32;
    - ``lse``: the per-token log-sum-exp over all V classes, ``[N]``, compute dtype.

    That is O(N) beyond the inputs. The gradient of the logits is that of the single-device
    loss, from the same per-token coefficients (``stats.grad_coefficients``) with K = V; it
    needs no communication, except under ``check_vma=False``, where the per-token
    cotangents are first summed over the shards (the transpose of the forward ``psum``).
    The hidden states' gradient returned is this shard's part.
    """
    h, w, b, status, target, lse = residuals
    opts = cfg.streaming.opts
    g_loss, g_lse = cotangent if cfg.streaming.return_lse else (cotangent, None)
    if not cfg.checked:
        g_loss = lax.psum(g_loss, cfg.names)
        g_lse = None if g_lse is None else lax.psum(g_lse, cfg.names)
    coef = grad_coefficients(g_loss, g_lse, lse, status, opts, cfg.num_classes)
    if cfg.sum_axes:
        dh, dw, db = _backward_by_tile(h, w, b, coef, lse, target, cfg)
    else:
        dh, dw, db = streaming.backward(h, w, b, coef, lse, target, cfg.streaming)
    return dh, dw, db, None, None


def _backward_by_tile(h, w, b, coef, lse, target, cfg: _Config):
    """The gradients token tile by token tile, each tile's hidden-state gradient summed over
    ``cfg.sum_axes`` as soon as its pass over this shard's chunks completes.

    The single-device order (chunks outside, tiles inside) would hold an ``[N, D]``
    partial sum until the end; here the partial sum is ``[T, D]`` and the weight's gradient
    is accumulated in place, in the compute dtype (a ``[D, V/n]`` float32 buffer for a
    half-precision weight; the gradient itself for a float32 one).
    """
    sc = cfg.streaming
    n, vocab = h.shape[0], w.shape[1]
    dtype = lse.dtype
    dz_dtype = jnp.promote_types(h.dtype, w.dtype)
    per_token = (*coef, lse, target)
    like = (h, w, b, *per_token)
    dead = streaming.dead_tokens(coef)

    def tile_step(carry, t):
        dh, dw, db = carry
        row0 = streaming.block_start(t, n, sc.tile)
        ht = streaming.live_rows(
            streaming.slice_block(h, row0, sc.tile, axis=0),
            lax.dynamic_slice_in_dim(dead, row0, sc.tile),
        )
        tok = tuple(lax.dynamic_slice_in_dim(x, row0, sc.tile) for x in per_token)
        _, row_fresh = streaming.fresh_indices(t, row0, sc.tile, n, (sc.tile, 1))

        def chunk_step(inner, i):
            dht, dw, db = inner
            col0 = streaming.block_start(i, vocab, sc.chunk)
            dz, wc = streaming.block_gradient(
                ht, tok, w, b, i, col0, row_fresh, sc, dtype, dz_dtype
            )
            dht = dht + lax.dot_general(dz, wc, streaming.DOT_NT, preferred_element_type=dtype)
            dwc = lax.dot_general(ht, dz, streaming.DOT_TN, preferred_element_type=dtype)
            dwc = dwc + lax.dynamic_slice_in_dim(dw, col0, sc.chunk, axis=1)
            dw = lax.dynamic_update_slice_in_dim(dw, dwc, col0, axis=1)
            if db is not None:
                dbc = jnp.sum(dz, axis=0, dtype=dtype)
                dbc = dbc + lax.dynamic_slice_in_dim(db, col0, sc.chunk)
                db = lax.dynamic_update_slice_in_dim(db, dbc, col0, axis=0)
            return (dht, dw, db), None

        init = (streaming.filled((sc.tile, h.shape[1]), 0, dtype, *like), dw, db)
        xs = jnp.arange(streaming.block_count(vocab, sc.chunk), dtype=jnp.int32)
        (dht, dw, db), _ = lax.scan(chunk_step, init, xs)
        # The repeated rows of a last tile shifted back have dz = 0: adding is safe.
        dht = lax.psum(dht, cfg.sum_axes)
        dh = lax.dynamic_update_slice_in_dim(
            dh, lax.dynamic_slice_in_dim(dh, row0, sc.tile) + dht.astype(dh.dtype), row0, axis=0
        )
        return (dh, dw, db), None

    init = (
        streaming.filled(h.shape, 0, dtype, h),
        streaming.filled(w.shape, 0, dtype, *like),
        None if b is None else streaming.filled(b.shape, 0, dtype, *like),
    )
    xs = jnp.arange(streaming.block_count(n, sc.tile), dtype=jnp.int32)
    (dh, dw, db), _ = lax.scan(tile_step, init, xs)
    return dh.astype(h.dtype), dw.astype(w.dtype), None if db is None else db.astype(b.dtype)


_fused.defvjp(_fused_fwd, _fused_bwd)
