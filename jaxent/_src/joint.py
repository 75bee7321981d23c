r"""Measures of a joint distribution of two discrete variables, on tables and on logits.

A joint distribution of X and Y is a table ``joint[..., x, y]``: X runs along the first of
``axes`` (by default -2), Y along the second (by default -1), and every other axis is a
batch axis. The probability forms use the table as given (it is not renormalised, as in
``entropy``); the logit forms normalise over both axes together,
:math:`p_{xy} = \exp(z_{xy}) / \sum_{x'y'} \exp(z_{x'y'})`, from max-shifted logits.

Marginals are :math:`p_x = \sum_y p_{xy}` and :math:`p_y = \sum_x p_{xy}`. Every measure is
a sum of terms that vanish with :math:`p_{xy}`: conditional entropy and mutual information
are computed as :math:`\sum p \log(p_x / p)` and :math:`\sum p \log(p / (p_x p_y))`, never
as differences of entropies (which cancel when the entropies are large and the measure
small).

Derivatives follow the convention of ``numerics``: exact where finite; in a cell with
:math:`p_{xy} = 0`, where the slope of every measure here diverges, the derivative is
reported as 0 (the cell lies outside the support and behaves like a masked one).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import arguments
from .numerics import is_zero, negated, xlogx, xlogx_to_sum
from .softmax import _rows_stats, _upcast, softmax_entropy

Axes = tuple[int, int]


# Argument handling.


def _xy_axes(axes: arguments.Axis, ndim: int, name: str) -> tuple[int, int]:
    """The (X, Y) axes, validated, non-negative."""
    if ndim < 2:
        raise ValueError(
            f"`{name}` must have at least 2 dimensions, [..., X, Y], got {ndim}; a single "
            "distribution has no joint measures (use `entropy`)."
        )
    ax = arguments.normalize_axes(axes, ndim, "axes")
    if len(ax) != 2:
        raise ValueError(f"`axes` must name two axes, (X axis, Y axis), got {axes!r}.")
    return ax[0], ax[1]


def _to_end(x: jax.Array, ax: tuple[int, int]) -> jax.Array:
    """Moves the X and Y axes to the end: [..., X, Y]."""
    return jnp.moveaxis(x, ax, (-2, -1))


def _table(joint, axes, where):
    """The table as [..., X, Y] in its compute dtype with masked cells set to 0, the mask
    (or None) and the (X, Y) axes."""
    joint = arguments.probabilities(joint, "joint")
    ax = _xy_axes(axes, joint.ndim, "joint")
    mask = arguments.normalize_where(where, joint.shape, ax)
    p = joint.astype(arguments.compute_dtype(joint))
    if mask is not None:
        p = jnp.where(mask.full, p, 0)
    return _to_end(p, ax), mask, ax


def _logit_axes(joint_logits, axes, where):
    """The logits as an array, validated, and their (X, Y) axes and mask (or None)."""
    z = arguments.as_array(joint_logits, "joint_logits")
    arguments.require_float(z, "joint_logits")
    ax = _xy_axes(axes, z.ndim, "joint_logits")
    if z.shape[ax[0]] == 0 or z.shape[ax[1]] == 0:
        raise ValueError(
            f"`joint_logits` has no cells along axes={axes!r} (shape {z.shape}): a softmax "
            "needs at least one."
        )
    return z, ax, arguments.normalize_where(where, z.shape, ax)


# Probability tables.


def _safe_log(x: jax.Array, skip: jax.Array) -> jax.Array:
    """log x, and 0 where ``skip`` (so that no -inf or NaN enters a discarded branch)."""
    return jnp.log(jnp.where(skip, 1, x))


class _Parts:
    """The marginals of a [..., X, Y] table and the logs every measure takes from them."""

    def __init__(self, p: jax.Array):
        self.p = p
        self.px = jnp.sum(p, axis=-1, keepdims=True)
        self.py = jnp.sum(p, axis=-2, keepdims=True)
        # NaN included: a NaN cell is not dropped.
        self.zero = p == 0
        p_, px_, py_ = (jnp.where(self.zero, 1, x) for x in (p, self.px, self.py))
        # Logs of the ratios in the definitions. A ratio rounded once or twice puts an
        # absolute error of an ulp or two into its log, however large the logs of p, p_x
        # and p_y; the difference of the logs puts eps times their sizes, far less where
        # all three are near 1 (a cell holding nearly all the mass, where the log of the
        # ratio is tiny and the rounded ratio would keep only eps / |log| of it). Each cell
        # takes the more accurate of the two.
        lp, lx, ly = jnp.log(p_), jnp.log(px_), jnp.log(py_)
        near_one = jnp.abs(lp) + jnp.abs(lx) + jnp.abs(ly) < 1
        self.log_px_over_p = jnp.where(near_one, lx - lp, jnp.log(px_ / p_))
        self.rho = jnp.where(near_one, lp - lx - ly, jnp.log((p_ / px_) / py_))
        self.log_px = _safe_log(self.px, self.px == 0)
        self.log_py = _safe_log(self.py, self.py == 0)

    def cell_sum(self, values: jax.Array) -> jax.Array:
        """sum over the cells of p * values, 0 where p = 0."""
        return jnp.sum(jnp.where(self.zero, 0, self.p * values), axis=(-2, -1))

    def mutual_information(self) -> tuple[jax.Array, jax.Array]:
        """The sum, at least 0 (never -0.0), and where it was clamped (the formula <= 0)."""
        i = self.cell_sum(self.rho)
        # Near independence the terms cancel, and rounding can leave the sum just below 0;
        # a table not summing to 1 can take the formula below 0 by far.
        clamped = i <= 0
        return jnp.where(clamped, 0, i), clamped

    def marginal_entropies(self) -> tuple[jax.Array, jax.Array]:
        hx = negated(jnp.sum(xlogx(self.px), axis=(-2, -1)))
        hy = negated(jnp.sum(xlogx(self.py), axis=(-2, -1)))
        return hx, hy


def _zero_cell_slope(parts: _Parts, slope: jax.Array, dp: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(parts.zero, 0, slope) * dp, axis=(-2, -1))


@jax.custom_jvp
def _conditional_entropy(p: jax.Array) -> jax.Array:
    parts = _Parts(p)
    return parts.cell_sum(parts.log_px_over_p)


@_conditional_entropy.defjvp
def _conditional_entropy_jvp(primals, tangents):
    (p,), (dp,) = primals, tangents
    parts = _Parts(p)
    return _conditional_entropy(p), _zero_cell_slope(parts, parts.log_px_over_p, dp)


@jax.custom_jvp
def _mutual_information(p: jax.Array) -> jax.Array:
    return _Parts(p).mutual_information()[0]


@_mutual_information.defjvp
def _mutual_information_jvp(primals, tangents):
    (p,), (dp,) = primals, tangents
    parts = _Parts(p)
    i, clamped = parts.mutual_information()
    # Where the value is held at 0 the slope is 0 (the clamp, not the formula, gives it).
    slope = jnp.where(jnp.expand_dims(clamped, (-2, -1)), 0, parts.rho - 1)
    return i, _zero_cell_slope(parts, slope, dp)


def _nmi_parts(parts: _Parts):
    i, clamped = parts.mutual_information()
    hx, hy = parts.marginal_entropies()
    total = hx + hy
    # A certain marginal (at most one row, or one column, holds mass; NaN counts as mass)
    # is decided from the zeros, not from entropies that rounding leaves just off 0.
    one_x = jnp.sum(parts.px != 0, axis=(-2, -1)) <= 1
    one_y = jnp.sum(parts.py != 0, axis=(-2, -1)) <= 1
    certain = one_x | one_y
    n = 2 * i / jnp.where(certain, 1, total)
    n = jnp.where(certain, jnp.where(one_x & one_y, 1, 0), n)
    invalid = jnp.any(~(parts.p >= 0), axis=(-2, -1))
    # 0, not -0.0, where I = 0.
    n = jnp.where(invalid, jnp.nan, jnp.where(n == 0, 0, n))
    return n, total, certain, clamped


@jax.custom_jvp
def _normalized_mutual_information(p: jax.Array) -> jax.Array:
    return _nmi_parts(_Parts(p))[0]


@_normalized_mutual_information.defjvp
def _normalized_mutual_information_jvp(primals, tangents):
    (p,), (dp,) = primals, tangents
    parts = _Parts(p)
    n, total, empty, clamped = _nmi_parts(parts)
    # d(2 I / D) = (2 dI - N dD) / D with dI = rho - 1, dD = -(log p_x + 1) - (log p_y + 1);
    # where I is held at 0, dI = 0 and N = 0: the slope is 0.
    e = jnp.expand_dims
    top = 2 * (parts.rho - 1) + e(n, (-2, -1)) * (parts.log_px + parts.log_py + 2)
    slope = top / e(jnp.where(empty, 1, total), (-2, -1))
    slope = jnp.where(e(empty | clamped, (-2, -1)), 0, slope)
    return n, _zero_cell_slope(parts, slope, dp)


def joint_entropy(
    joint: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Joint entropy :math:`H(X, Y)` of the probability tables ``joint``.

    .. math::
        H(X, Y) = -\sum_{x, y} p_{xy} \log_b p_{xy}, \qquad 0 \log 0 = 0.

    Cells where ``where`` is False take no part: the result is that of the table with those
    cells set to 0, whatever they hold (NaN included); a fully masked table gives 0. The
    table is not renormalised. A negative or NaN cell inside the mask gives NaN. The
    gradient is :math:`-(\log p_{xy} + 1)/\ln b`, and 0 at :math:`p_{xy} = 0`.

    Args:
      joint: probability tables, shape ``[..., X, Y]`` (X and Y on ``axes``).
      axes: the (X, Y) axes, a pair of ints (static).
      where: optional boolean mask of cells, broadcastable to ``joint``, or per-table (the
        shape of ``joint`` without ``axes``).
      base: logarithm base (static); None for nats, 2 for bits.

    Returns:
      ``joint``'s shape without ``axes``, float32 for half-precision input, float64 for
      float64.

    Raises:
      TypeError: ``joint`` is not real-valued, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: ``joint`` has fewer than 2 dimensions, ``axes`` is out of range or names
        one axis twice, ``where`` has the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.joint_entropy([[0.25, 0.25], [0.25, 0.25]], base=2):.4f}")
      2.0000

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", sec. 2.2.
    """
    p, _, _ = _table(joint, axes, where)
    return arguments.in_base(negated(jnp.sum(xlogx_to_sum(p), axis=(-2, -1))), base)


def conditional_entropy(
    joint: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Conditional entropy :math:`H(Y \mid X)` of the tables ``joint``: X is conditioned on.

    X is the first of ``axes`` (by default -2, the rows), Y the second; for
    :math:`H(X \mid Y)` pass ``axes=(-1, -2)``.

    .. math::
        H(Y \mid X) = \sum_{x, y} p_{xy} \log_b \frac{p_x}{p_{xy}} = H(X, Y) - H(X),
        \qquad p_x = \sum_y p_{xy}, \qquad \text{terms with } p_{xy} = 0 \text{ are } 0.

    Each term is :math:`\ge 0` (as :math:`p_{xy} \le p_x`), so the result is never negative
    for a valid table, and never a cancellation of two large entropies. Masked cells are set
    to 0 (see ``joint_entropy``); a negative or NaN cell inside the mask gives NaN. The
    gradient is :math:`\log_b(p_x / p_{xy})`, and 0 at :math:`p_{xy} = 0` (where it
    diverges).

    Args:
      joint: probability tables, shape ``[..., X, Y]``.
      axes: the (X, Y) axes, a pair of ints (static); X is conditioned on.
      where: optional boolean mask of cells, broadcastable to ``joint``, or per-table.
      base: logarithm base (static); None for nats.

    Returns:
      ``joint``'s shape without ``axes``, at least float32.

    Raises:
      TypeError: ``joint`` is not real-valued, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: ``joint`` has fewer than 2 dimensions, ``axes`` is invalid, ``where`` has
        the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jaxent as je
      >>> joint = [[0.5, 0.0], [0.25, 0.25]]
      >>> print(f"{je.conditional_entropy(joint, base=2):.4f}")
      0.5000
      >>> print(f"{je.conditional_entropy(joint, axes=(-1, -2), base=2):.4f}")
      0.6887

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", sec. 2.2.
    """
    p, _, _ = _table(joint, axes, where)
    return arguments.in_base(_conditional_entropy(p), base)


def mutual_information(
    joint: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Mutual information :math:`I(X; Y)` of the tables ``joint``.

    .. math::
        I(X; Y) = \sum_{x, y} p_{xy} \log_b \frac{p_{xy}}{p_x\, p_y}
        = D(p_{XY} \,\|\, p_X p_Y) = H(X) + H(Y) - H(X, Y),
        \qquad \text{terms with } p_{xy} = 0 \text{ are } 0.

    Computed as the sum on the left, never as a difference of entropies; a sum that
    rounding leaves below 0 (possible only near independence) is returned as 0, as
    scikit-learn does, so that the result is :math:`\ge 0` (and never -0.0). A table that
    does not sum to 1 is used as given: the result is :math:`\max(0, \text{formula})`,
    and the formula can be negative (for counts :math:`[[2, 1], [1, 3]]` it is -11.8).
    Masked cells are set to 0 (see ``joint_entropy``); a negative or NaN cell inside the
    mask gives NaN. The gradient is :math:`(\log(p_{xy} / (p_x p_y)) - 1)/\ln b`, and 0 at
    :math:`p_{xy} = 0` (where it diverges); where the formula is :math:`\le 0` and the
    result held at 0 it is 0 everywhere, the derivative of the clamp (at a formula of
    exactly 0, such as :math:`[[0.3, 0.7], [0, 0]]`, a kink, 0 is the one-sided derivative
    towards the clamped side, and a minimum of :math:`I` over tables summing to 1).

    Args:
      joint: probability tables, shape ``[..., X, Y]``.
      axes: the (X, Y) axes, a pair of ints (static).
      where: optional boolean mask of cells, broadcastable to ``joint``, or per-table.
      base: logarithm base (static); None for nats.

    Returns:
      ``joint``'s shape without ``axes``, at least float32.

    Raises:
      TypeError: ``joint`` is not real-valued, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: ``joint`` has fewer than 2 dimensions, ``axes`` is invalid, ``where`` has
        the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2):.4f}")
      1.0000
      >>> print(f"{je.mutual_information([[0.5, 0.0], [0.25, 0.25]], base=2):.4f}")
      0.3113

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", sec. 2.4.
    """
    p, _, _ = _table(joint, axes, where)
    return arguments.in_base(_mutual_information(p), base)


def normalized_mutual_information(
    joint: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Normalised mutual information of the tables ``joint``, by the arithmetic mean.

    .. math::
        \operatorname{NMI}(X; Y) = \frac{I(X; Y)}{\tfrac12 (H(X) + H(Y))},
        \qquad \operatorname{NMI} = 1 \text{ where } H(X) = H(Y) = 0.

    This is scikit-learn's ``normalized_mutual_info_score`` (its default
    ``average_method="arithmetic"``) on the contingency table ``joint`` normalised to sum 1
    (the table is divided by its total over the allowed cells first, so any non-negative
    counts, float or integer, give the same result at any scale),
    including its limit case: where both marginals are certain (one row and one column
    hold all the mass, or the table is all zeros), the 0/0 is defined as 1, a perfect
    match. Where only one is certain, :math:`I = 0` and NMI = 0. For a table that sums to 1
    the result lies in [0, 1] (to within rounding). A ratio of two quantities in the same
    unit, it takes no ``base``. Masked cells are set to 0 (see ``joint_entropy``), but a
    table with no allowed cell (excluded by a per-table ``where``, or all its cells masked)
    gives 0, as in every jaxent function. A table with an axis of length 0 is all zeros,
    not masked: 1, as scikit-learn's score of two empty labelings. A negative or NaN cell
    inside the mask gives NaN. The derivative is
    :math:`(2\,\partial I - \operatorname{NMI}\,\partial(H(X) + H(Y))) / (H(X) + H(Y))`
    from the closed forms of its parts on the normalised table, carried through the
    division by the total (so it has no component along ``joint`` itself), reported as 0 at
    :math:`p_{xy} = 0` (where :math:`\partial I` diverges), where a marginal is certain
    (NMI is 0 or 1 there) and where :math:`I` is held at 0. The result is never -0.0.

    Args:
      joint: probability tables, shape ``[..., X, Y]``.
      axes: the (X, Y) axes, a pair of ints (static).
      where: optional boolean mask of cells, broadcastable to ``joint``, or per-table.

    Returns:
      ``joint``'s shape without ``axes``, at least float32.

    Raises:
      TypeError: ``joint`` is not real-valued, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: ``joint`` has fewer than 2 dimensions, ``axes`` is invalid, or ``where``
        has the wrong shape.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.normalized_mutual_information([[0.5, 0.0], [0.0, 0.5]]):.4f}")
      1.0000
      >>> print(f"{je.normalized_mutual_information([[0.5, 0.0], [0.25, 0.25]]):.4f}")
      0.3437
      >>> print(f"{je.normalized_mutual_information([[1.0, 0.0], [0.0, 0.0]]):.4f}")
      1.0000

    References:
      A. Strehl and J. Ghosh, "Cluster Ensembles", JMLR 3, 2002; N. X. Vinh, J. Epps and
      J. Bailey, "Information Theoretic Measures for Clusterings Comparison", JMLR 11, 2010.
    """
    p, mask, ax = _table(joint, axes, where)
    # Scale-invariant: the table divided by its (masked) total. A total that is not
    # positive (an all-zero table, or a negative or NaN cell) is left alone.
    # A zero cell adds nothing to the total's derivative either (the convention above).
    total = jnp.sum(jnp.where(p != 0, p, jax.lax.stop_gradient(p)), axis=(-2, -1), keepdims=True)
    n = _normalized_mutual_information(p / jnp.where(total > 0, total, 1))
    if mask is not None:
        n = jnp.where(jnp.any(mask.full, axis=ax), n, 0)
    return n


# Logits.


class _JointLogits:
    """The softmax of [..., A, B] logits over both axes, and the logs the measures need.

    ``p`` is 0 at -inf or masked cells and in a table with no finite allowed logit; ``cell``
    marks the cells with ``p != 0`` (NaN included). The logs are 0 outside ``cell``. With
    ``swap`` False the first axis (A) is X; with ``swap`` True the second (B) is.
    ``m``, ``sa``, ``sb`` and ``s`` (keepdims) are the table's shift and the sums of
    exp(z - m) over B (per a), over A (per b) and over the table. ``m``, ``sa``, ``sb`` and
    ``s`` may be given (per-row values of an earlier pass) instead of computed.
    """

    def __init__(self, z: jax.Array, mask: jax.Array | None, swap: bool = False, rows=None):
        zm = z if mask is None else jnp.where(mask, z, -jnp.inf)
        if rows is None:
            m = jax.lax.stop_gradient(jnp.max(zm, axis=(-2, -1), keepdims=True))
            m = jnp.where(jnp.isfinite(m), m, 0)
        else:
            m = rows[0]
        d = zm - m
        e = jnp.exp(d)
        if rows is None:
            sa = jnp.sum(e, axis=-1, keepdims=True)
            sb = jnp.sum(e, axis=-2, keepdims=True)
            s = jnp.sum(sa, axis=-2, keepdims=True)
        else:
            sa, sb, s = rows[1:]
        self.m, self.sa, self.sb, self.s = m, sa, sb, s
        sx, sy = (sb, sa) if swap else (sa, sb)
        self.p = e * jnp.where(s > 0, 1 / jnp.where(s > 0, s, 1), 0)
        self.cell = self.p != 0
        d = jnp.where(self.cell, d, 0)
        e, sx, sy, s = (jnp.where(self.cell, x, 1) for x in (e, sx, sy, s))
        # log p(y | x) from the shifted logit; log(p / (p_x p_y)) = log(p(y | x) / p_y) as
        # the log of a ratio (accurate to an ulp or two whatever the size of the logs).
        self.log_cond = jnp.where(self.cell, d - jnp.log(sx), 0)
        rho = jnp.log((e / sx) * (s / sy))
        self.rho = jnp.where(self.cell, rho, 0)

    def expectation(self, values: jax.Array, keepdims: bool = False) -> jax.Array:
        """sum over the cells of p * values, 0 outside ``cell``."""
        terms = jnp.where(self.cell, self.p * values, 0)
        return jnp.sum(terms, axis=(-2, -1), keepdims=keepdims)


class _JointSpec(NamedTuple):
    """The static part of a measure on joint logits laid out as [..., A * B] rows."""

    shape: tuple[int, int]  # (A, B)
    swap: bool  # X is the second of the two axes
    measure: str  # "conditional" or "mutual"


def _joint_layout(joint_logits, axes, where, symmetric: bool):
    """The logits as rows [..., A * B] of their two axes in storage order (no copy where they
    are the last two), the cell mask as the kernels take it (one row shared by every table,
    or laid out like the rows), the skipped tables (a per-table mask) and whether X is the
    second axis. ``symmetric``: the measure does not depend on which axis is X."""
    z, ax, mask = _logit_axes(joint_logits, axes, where)
    swap = ax[0] > ax[1]
    pair = (min(ax), max(ax))
    z = _to_end(z, pair)
    a, b = z.shape[-2:]
    rows = z.reshape((*z.shape[:-2], a * b))
    cells, skip = None, None
    if mask is not None and mask.rows is not None:
        skip = ~mask.rows
    elif mask is not None:
        w = jnp.asarray(where)
        padded = w.reshape((1,) * (z.ndim - w.ndim) + w.shape)
        if all(n == 1 for i, n in enumerate(padded.shape) if i not in pair):
            # Shared by every table: one row of cells.
            cells = jnp.broadcast_to(_to_end(padded, pair)[(0,) * (z.ndim - 2)], (a, b))
            cells = cells.reshape(a * b)
        else:
            cells = _to_end(mask.full, pair).reshape(rows.shape)
    return rows, cells, skip, (a, b), swap and not symmetric


def _joint_stats(spec: _JointSpec):
    """Per table of a block: the measure, the shift m, the sum s, and the sums over B
    ([R, A]) and over A ([R, B]): one output each, whatever the table's size (an output per
    column made tracing grow with the table: minutes for a [2, 40000] one)."""
    a, b = spec.shape

    def stats(axis, z, mask):
        r = z.shape[0]
        z3 = z.reshape(r, a, b)
        m3 = None if mask is None else mask.reshape(r, a, b)
        jl = _JointLogits(z3, m3, spec.swap)
        if spec.measure == "conditional":
            value = negated(jl.expectation(jl.log_cond))
        else:
            value = jl.expectation(jl.rho)
        return value[:, None], jl.m[:, 0], jl.s[:, 0], jl.sa[:, :, 0], jl.sb[:, 0, :]

    return stats


def _joint_parts(spec: _JointSpec, z, mask, skip):
    """The measure and the per-table values (keepdims, laid out as [..., A, B] tables)."""
    a, b = spec.shape
    ct = jnp.result_type(z.dtype, jnp.float32)
    out = _rows_stats(_joint_stats(spec), (z,), mask, -1, ct, True)
    value, m, s, sa, sb = out
    lead = z.shape[:-1]
    sa = sa.reshape((*lead, a, 1))
    sb = sb.reshape((*lead, 1, b))
    m, s = (x.reshape((*lead, 1, 1)) for x in (m, s))
    value = value[..., 0]
    if skip is not None:
        value = jnp.where(skip, 0, value)
    return ct, value, (m, sa, sb, s)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _joint_measure(spec, z, mask, skip):
    value = _joint_parts(spec, z, mask, skip)[1]
    return jnp.where(value < 0, 0, value) if spec.measure == "mutual" else value


def _joint_measure_jvp(spec, primals, tangents):
    z, mask, skip = primals
    dz = tangents[0]
    ct, value, rows = _joint_parts(spec, z, mask, skip)
    out = jnp.where(value < 0, 0, value) if spec.measure == "mutual" else value
    if is_zero(dz):
        return out, jnp.zeros_like(out)
    # Elementwise from the logits and the per-table values: one pass.
    shape3 = (*z.shape[:-1], *spec.shape)
    zf = _upcast(z, ct).reshape(shape3)
    m3 = None if mask is None else jnp.broadcast_to(mask, z.shape).reshape(shape3)
    jl = _JointLogits(zf, m3, spec.swap, rows)
    v = jnp.expand_dims(value, (-2, -1))
    if spec.measure == "conditional":
        # dH(Y|X)/dz = -p (log p(y|x) + H(Y|X)).
        slope = jnp.where(jl.cell, -jl.p * (jl.log_cond + v), 0)
    else:
        # dI/dz = p (log(p / (p_x p_y)) - I).
        slope = jnp.where(jl.cell, jl.p * (jl.rho - v), 0)
    if skip is not None:
        slope = jnp.where(jnp.expand_dims(skip, (-2, -1)), 0, slope)
    dz3 = dz.astype(ct).reshape(shape3)
    return out, jnp.sum(slope * dz3, axis=(-2, -1))


_joint_measure.defjvp(_joint_measure_jvp, symbolic_zeros=True)


def _joint_from_logits(joint_logits, axes, where, measure: str) -> jax.Array:
    rows, cells, skip, shape, swap = _joint_layout(
        joint_logits, axes, where, symmetric=measure == "mutual"
    )
    return _joint_measure(_JointSpec(shape, swap, measure), rows, cells, skip)


def joint_entropy_from_logits(
    joint_logits: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Joint entropy :math:`H(X, Y)` of the softmax of ``joint_logits`` over both axes.

    .. math::
        p_{xy} = \frac{e^{z_{xy}}}{\sum_{x'y'} e^{z_{x'y'}}}, \qquad
        H(X, Y) = \operatorname{lse}(z) - \sum_{x, y} p_{xy} z_{xy}, \qquad
        \frac{\partial H}{\partial z_{xy}} = -p_{xy} (\log p_{xy} + H).

    The entropy of the table flattened to one distribution, as ``entropy_from_logits`` with
    ``axis=axes``. A -inf logit is a cell of probability 0: it contributes 0 and gets
    gradient 0. Masked cells are such cells, whatever they hold; a table with no finite
    allowed logit (all -inf, or fully masked) gives 0. A +inf or NaN allowed logit gives
    NaN.

    Memory: the tables are read as they are (half precision upcast inside the pass; moved
    only where the two axes are not the last two), in the two passes of
    ``entropy_from_logits`` on the flattened table, keeping one value per table: the
    compiler's temp memory stays under 1% of the logits (float32; for bfloat16, the one
    float32 copy of the shared row-block passes).

    Args:
      joint_logits: shape ``[..., X, Y]`` (X and Y on ``axes``), floating dtype.
      axes: the (X, Y) axes, a pair of ints (static).
      where: optional boolean mask of cells, broadcastable to ``joint_logits``, or
        per-table (its shape without ``axes``).
      base: logarithm base (static); None for nats.

    Returns:
      ``joint_logits``' shape without ``axes``, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: the logits have fewer than 2 dimensions or no cells, ``axes`` is invalid,
        ``where`` has the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> z = jnp.array([[0.0, 0.0], [0.0, -jnp.inf]])
      >>> print(f"{je.joint_entropy_from_logits(z, base=3):.4f}")
      1.0000
    """
    rows, cells, skip, _, _ = _joint_layout(joint_logits, axes, where, symmetric=True)
    ln_b = arguments.log_base(base)
    skip = None if skip is None else skip[..., None]
    h = softmax_entropy(rows, mask=cells, skip=skip, axis=rows.ndim - 1)
    return arguments.in_units(h, ln_b)


def conditional_entropy_from_logits(
    joint_logits: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Conditional entropy :math:`H(Y \mid X)` of the softmax of ``joint_logits``.

    X is the first of ``axes`` (by default -2) and is conditioned on. With :math:`p` the
    softmax over both axes and :math:`p(y \mid x)` the softmax of row :math:`x` alone:

    .. math::
        H(Y \mid X) = -\sum_{x, y} p_{xy} \log p(y \mid x), \qquad
        \frac{\partial H(Y \mid X)}{\partial z_{xy}}
        = -p_{xy} \left(\log p(y \mid x) + H(Y \mid X)\right).

    Every term is :math:`\ge 0`, computed from the row's log-sum-exp, never as
    :math:`H(X, Y) - H(X)`. -inf logits and masked cells are cells of probability 0 (0,
    gradient 0); a row of X with no finite logit has :math:`p_x = 0` and takes no part; a
    table with no finite allowed logit gives 0; a +inf or NaN allowed logit gives NaN.

    Memory: the forward pass reads each table once, a block of tables at a time, and keeps
    one value per table (temp under 1% of the logits in float32). The derivative rule
    writes the gradient in one elementwise pass, but it needs :math:`\log p_x` for every
    x, which no elementwise pass can form: it keeps the per-table sums over each row and
    each column, :math:`(X + Y)/(XY)` of the logits (and a copy), so value-and-grad's temp
    memory is a few percent of the logits for small tables (3.2% at [4096, 64, 64] in
    float32, measured with ``memory_analysis()``), falling as the tables grow.

    Args:
      joint_logits: shape ``[..., X, Y]``, floating dtype.
      axes: the (X, Y) axes, a pair of ints (static); X is conditioned on.
      where: optional boolean mask of cells, broadcastable to ``joint_logits``, or
        per-table.
      base: logarithm base (static); None for nats.

    Returns:
      ``joint_logits``' shape without ``axes``, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: the logits have fewer than 2 dimensions or no cells, ``axes`` is invalid,
        ``where`` has the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> z = jnp.log(jnp.array([[0.5, 0.0], [0.25, 0.25]]))
      >>> print(f"{je.conditional_entropy_from_logits(z, base=2):.4f}")
      0.5000
    """
    h = _joint_from_logits(joint_logits, axes, where, "conditional")
    return arguments.in_base(h, base)


def mutual_information_from_logits(
    joint_logits: jax.typing.ArrayLike,
    *,
    axes: Axes = (-2, -1),
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Mutual information :math:`I(X; Y)` of the softmax of ``joint_logits``.

    With :math:`p` the softmax over both axes, :math:`r_x` the log-sum-exp of row :math:`x`,
    :math:`c_y` that of column :math:`y` and :math:`L` that of the whole table:

    .. math::
        I(X; Y) = \sum_{x, y} p_{xy} \rho_{xy}, \quad
        \rho_{xy} = \log \frac{p_{xy}}{p_x p_y} = z_{xy} - r_x - c_y + L, \qquad
        \frac{\partial I}{\partial z_{xy}} = p_{xy} (\rho_{xy} - I).

    Computed as this sum, never as a difference of entropies; a sum that rounding leaves
    below 0 is returned as 0. -inf logits and masked cells are cells of probability 0 (0,
    gradient 0); a table with no finite allowed logit gives 0; a +inf or NaN allowed logit
    gives NaN.

    Memory: as ``conditional_entropy_from_logits``: one pass per table forward (temp under
    1% of the logits in float32); the derivative rule keeps the per-table row and column
    sums, :math:`(X + Y)/(XY)` of the logits and a copy (4.8% at [4096, 64, 64] in
    float32, measured with ``memory_analysis()``).

    Args:
      joint_logits: shape ``[..., X, Y]``, floating dtype.
      axes: the (X, Y) axes, a pair of ints (static).
      where: optional boolean mask of cells, broadcastable to ``joint_logits``, or
        per-table.
      base: logarithm base (static); None for nats.

    Returns:
      ``joint_logits``' shape without ``axes``, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating, ``where`` is not boolean, or ``axes`` is not
        a pair of ints.
      ValueError: the logits have fewer than 2 dimensions or no cells, ``axes`` is invalid,
        ``where`` has the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> z = jnp.array([[0.0, -jnp.inf], [-jnp.inf, 0.0]])
      >>> print(f"{je.mutual_information_from_logits(z, base=2):.4f}")
      1.0000
    """
    i = _joint_from_logits(joint_logits, axes, where, "mutual")
    return arguments.in_base(i, base)
