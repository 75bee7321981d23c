r"""Mutual information estimated from a joint histogram of counts (a contingency table)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import arguments
from ..numerics import rel_entr
from .histograms import from_bins_last, occupied


def _pair_of_axes(axes: object, ndim: int) -> tuple[int, int]:
    if ndim < 2:
        raise ValueError(
            f"`counts_xy` must have at least 2 dimensions (the X and Y bins), got {ndim}."
        )
    if not isinstance(axes, tuple | list) or len(axes) != 2:
        raise TypeError(f"`axes` must be a pair of ints (the X and Y axes), got {axes!r}.")
    x, y = arguments.normalize_axes(axes, ndim, "axes")
    return x, y


def mutual_information_plugin(
    counts_xy: jax.typing.ArrayLike,
    *,
    axes: tuple[int, int] = (-2, -1),
    base: float | None = None,
    miller_madow: bool = False,
) -> jax.Array:
    r"""Plug-in estimate of the mutual information of X and Y from their joint counts.

    .. math::
        \hat I(X; Y) = \sum_{x, y:\, n_{xy} > 0} \frac{n_{xy}}{N}
        \log_b \frac{n_{xy} N}{n_{x\cdot}\, n_{\cdot y}}
        = \hat H(X) + \hat H(Y) - \hat H(X, Y),

    with :math:`n_{x\cdot}` and :math:`n_{\cdot y}` the marginal counts. It is biased
    upwards: about :math:`(K_X - 1)(K_Y - 1)/(2N)` nats for independent variables. With
    ``miller_madow=True`` each of the three entropies gets its Miller-Madow correction,
    which adds :math:`(m_X + m_Y - m_{XY} - 1)/(2N)` nats, :math:`m` counting the occupied
    bins of each histogram. The plug-in sum is :math:`\ge 0`; near independence, where
    rounding can leave it just below 0, it is returned as 0 (never -0.0), as
    ``jaxent.mutual_information`` does, before the correction is added. An all-zero table
    gives 0; a negative, NaN or infinite count gives NaN.

    Differentiable in the counts (as floats): exact for every occupied cell; an empty cell
    gets gradient 0, the numbers of occupied bins are piecewise constant, and where the
    plug-in sum is held at 0 its gradient is 0.

    Args:
      counts_xy: joint counts, shape ``[..., K_X, ..., K_Y, ...]``, integer or float.
      axes: the X and Y axes, in that order (static).
      base: logarithm base (static); None for nats, 2 for bits.
      miller_madow: whether to apply the Miller-Madow correction (static).

    Returns:
      ``counts_xy``'s shape without ``axes``; float32 for integer and half-precision
      counts, float64 for float64 counts.

    Raises:
      TypeError: ``counts_xy`` is not real-valued, or an option has the wrong type.
      ValueError: ``counts_xy`` has fewer than two dimensions, ``axes`` are out of range
        or equal, or ``base`` is invalid.

    Examples:
      >>> from jaxent import estimators
      >>> table = [[10, 0], [0, 10]]  # Y copies X: one bit
      >>> print(f"{estimators.mutual_information_plugin(table, base=2):.4f}")
      1.0000
      >>> print(f"{estimators.mutual_information_plugin([[5, 5], [5, 5]]):.4f}")
      0.0000

    References:
      L. Paninski, "Estimation of entropy and mutual information", Neural Computation 15,
      2003. G. A. Miller, "Note on the bias of information estimates", 1955.
    """
    counts = arguments.as_array(counts_xy, "counts_xy")
    arguments.require_real(counts, "counts_xy")
    x_axis, y_axis = _pair_of_axes(axes, counts.ndim)
    correct = arguments.static_flag(miller_madow, "miller_madow")
    counts = jnp.moveaxis(counts, (x_axis, y_axis), (-2, -1))
    shape = counts.shape
    flat = counts.reshape((*shape[:-2], shape[-2] * shape[-1]))
    h = from_bins_last(flat.astype(arguments.compute_dtype(flat)), occupied_only=True)
    n_xy = h.n.reshape(shape)
    n_total = h.safe_total[..., None, None]
    p_xy = n_xy / n_total
    p_x = jnp.sum(p_xy, axis=-1, keepdims=True)
    p_y = jnp.sum(p_xy, axis=-2, keepdims=True)
    info = jnp.sum(rel_entr(p_xy, p_x * p_y), axis=(-2, -1))
    # Near independence rounding leaves the sum on either side of 0: held at 0 (gradient 0).
    info = jnp.where(info <= 0, 0, info)
    if correct:
        m = occupied(p_x[..., 0]) + occupied(p_y[..., 0, :]) - occupied(h.n) - 1
        info = info + m / (2 * h.safe_total)
    return h.finish(info, base)
