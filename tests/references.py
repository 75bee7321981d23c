"""Float64 oracles written with NumPy and SciPy, independently of jaxent's implementation.

Every function takes NumPy arrays (any float dtype; computed in float64) and loops over the
distributions one at a time, keeping only the entries that ``where`` allows, so that masks,
tuple axes and per-example masks are handled by plain slicing rather than by the masked
arithmetic under test. ``torch_cross_entropy`` restates the formula PyTorch documents for
``cross_entropy(reduction='none')`` with ``weight``, ``label_smoothing`` and
``ignore_index``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def _axes(axis, ndim):
    """The axes named by ``axis`` (int or tuple), non-negative, in the order given."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def rows(x, axis):
    """Moves ``axis`` (int or tuple) to the end and flattens it: shape (*batch, K)."""
    x = np.asarray(x)
    axes = _axes(axis, x.ndim)
    batch = tuple(i for i in range(x.ndim) if i not in axes)
    x = np.transpose(x, batch + axes)
    return x.reshape(*x.shape[: len(batch)], -1)


def _mask_rows(where, shape, axis):
    """The mask as (*batch, K) rows: full-rank masks broadcast, lower-rank ones per example."""
    if where is None:
        return rows(np.ones(shape, bool), axis)
    where = np.asarray(where, bool)
    axes = _axes(axis, len(shape))
    if where.ndim < len(shape):
        where = np.expand_dims(where, axes)
    return rows(np.broadcast_to(where, shape), axis)


def _per_row(fn, arrays, axis, where):
    """Applies ``fn(*allowed_entries_of_each_array)`` to every distribution."""
    shape = np.shape(arrays[0])
    rs = [rows(np.asarray(a, np.float64), axis) for a in arrays]
    mask = _mask_rows(where, shape, axis)
    batch = rs[0].shape[:-1]
    out = np.empty(batch, np.float64)
    for idx in np.ndindex(*batch):
        m = mask[idx]
        out[idx] = fn(*(r[idx][m] for r in rs))
    return out


def _unit(base):
    return 1.0 if base is None else math.log(base)


# Measures on probabilities.


def self_information(p, base=None):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log(np.asarray(p, np.float64)) / _unit(base)


def entropy(p, axis=-1, where=None, base=None):
    return _per_row(lambda x: np.sum(special.entr(x)), [p], axis, where) / _unit(base)


def binary_entropy(p, base=None):
    p = np.asarray(p, np.float64)
    return (special.entr(p) + special.entr(1 - p)) / _unit(base)


def cross_entropy(p, q, axis=-1, where=None, base=None):
    return _per_row(lambda a, b: -np.sum(special.xlogy(a, b)), [p, q], axis, where) / _unit(base)


def kl_divergence(p, q, axis=-1, where=None, base=None):
    return _per_row(lambda a, b: np.sum(special.rel_entr(a, b)), [p, q], axis, where) / _unit(base)


def binary_cross_entropy(a, y):
    a, y = np.asarray(a, np.float64), np.asarray(y, np.float64)
    with np.errstate(divide="ignore"):
        return -(special.xlogy(y, a) + special.xlogy(1 - y, 1 - a))


# Losses on logits.


def _xent_row(z, y, w, smoothing, z_loss):
    if z.size == 0:
        return 0.0
    t = (1 - smoothing) * y + smoothing / z.size
    wt = w * t
    logq = special.log_softmax(z)
    keep = wt != 0
    loss = -np.sum(wt[keep] * logq[keep])
    if z_loss:
        loss += z_loss * special.logsumexp(z) ** 2
    return loss


def softmax_cross_entropy(
    logits, labels, axis=-1, where=None, label_smoothing=0.0, z_loss=0.0, class_weights=None
):
    logits = np.asarray(logits, np.float64)
    k = rows(logits, axis).shape[-1]
    w = np.ones(k) if class_weights is None else np.asarray(class_weights, np.float64).ravel()
    w = np.broadcast_to(w, rows(logits, axis).shape)
    # The weights ride along as a third "distribution" so that masks slice them alike.
    w_full = _unrows(w, logits.shape, axis)
    return _per_row(
        lambda z, y, wr: _xent_row(z, y, wr, label_smoothing, z_loss),
        [logits, labels, w_full],
        axis,
        where,
    )


def _unrows(r, shape, axis):
    """Inverse of ``rows`` for an array of ``shape``."""
    axes = _axes(axis, len(shape))
    batch = tuple(i for i in range(len(shape)) if i not in axes)
    perm = batch + axes
    x = np.asarray(r).reshape([shape[i] for i in perm])
    return np.transpose(x, np.argsort(perm))


def one_hot(labels, logits_shape, axis=-1):
    """One-hot targets of ``logits_shape`` for integer labels (flat index for tuple axes)."""
    labels = np.asarray(labels)
    k = rows(np.empty(logits_shape), axis).shape[-1]
    r = (labels[..., None] == np.arange(k)).astype(np.float64)
    return _unrows(r, logits_shape, axis)


def softmax_cross_entropy_with_integer_labels(
    logits,
    labels,
    axis=-1,
    where=None,
    label_smoothing=0.0,
    z_loss=0.0,
    class_weights=None,
    ignore_index=None,
):
    """One-hot encoding; NaN for labels outside [0, K); 0 for ``ignore_index``."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    k = rows(logits, axis).shape[-1]
    out = softmax_cross_entropy(
        logits,
        one_hot(labels, logits.shape, axis),
        axis=axis,
        where=where,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        class_weights=class_weights,
    )
    out = np.where((labels < 0) | (labels >= k), np.nan, out)
    if ignore_index is not None:
        out = np.where(labels == ignore_index, 0.0, out)
    return out


def torch_cross_entropy(logits, labels, weight=None, label_smoothing=0.0, ignore_index=-100):
    """PyTorch's documented ``cross_entropy(reduction='none')`` for class-index targets.

    ``(1 - e) * nll + e / K * smooth`` with ``nll = -w[c] log q_c`` and
    ``smooth = -sum_j w_j log q_j``; rows labelled ``ignore_index`` give 0. ``logits`` is
    (N, K).
    """
    logits = np.asarray(logits, np.float64)
    n, k = logits.shape
    w = np.ones(k) if weight is None else np.asarray(weight, np.float64)
    out = np.zeros(n)
    for i in range(n):
        c = int(labels[i])
        if c == ignore_index:
            continue
        logq = special.log_softmax(logits[i])
        nll = -w[c] * logq[c]
        smooth = -np.sum(w * logq)
        out[i] = (1 - label_smoothing) * nll + label_smoothing / k * smooth
    return out


def torch_soft_cross_entropy(logits, targets, weight=None, label_smoothing=0.0):
    """PyTorch's ``cross_entropy(reduction='none')`` for probability targets, (N, K)."""
    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets, np.float64)
    k = logits.shape[-1]
    w = np.ones(k) if weight is None else np.asarray(weight, np.float64)
    t = (1 - label_smoothing) * targets + label_smoothing / k
    return -np.sum(w * t * special.log_softmax(logits, axis=-1), axis=-1)


def _softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid_binary_cross_entropy(logits, labels, pos_weight=None):
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    a, b = pw * y, 1 - y
    with np.errstate(invalid="ignore"):
        pos = np.where(a != 0, a * _softplus(-z), 0.0)
        neg = np.where(b != 0, b * _softplus(z), 0.0)
    return pos + neg


def multilabel_sigmoid_cross_entropy(logits, labels, axis=-1, where=None, pos_weight=None):
    z = np.asarray(logits, np.float64)
    pw = np.ones_like(z) if pos_weight is None else np.broadcast_to(pos_weight, z.shape)
    return _per_row(
        lambda zr, yr, pr: np.sum(sigmoid_binary_cross_entropy(zr, yr, pr)),
        [z, labels, pw],
        axis,
        where,
    )


def entropy_from_logits(logits, axis=-1, where=None, base=None):
    def row(z):
        return 0.0 if z.size == 0 else np.sum(special.entr(special.softmax(z)))

    return _per_row(row, [logits], axis, where) / _unit(base)


def kl_divergence_from_logits(p_logits, q_logits, axis=-1, where=None, base=None):
    def row(a, b):
        if a.size == 0:
            return 0.0
        # in log space: softmax(b) may underflow where log_softmax(b) is finite.
        p, log_p, log_q = special.softmax(a), special.log_softmax(a), special.log_softmax(b)
        keep = p > 0
        return np.sum(p[keep] * (log_p[keep] - log_q[keep]))

    return _per_row(row, [p_logits, q_logits], axis, where) / _unit(base)


# Closed-form gradients, for the gradient tests.


def softmax(z, axis=-1):
    return special.softmax(np.asarray(z, np.float64), axis=axis)


def sigmoid(z):
    return special.expit(np.asarray(z, np.float64))


# Seeded test inputs.


def random_probs(rng, shape, axis=-1, zeros=0.0):
    """Distributions along ``axis`` (int or tuple); a fraction ``zeros`` of entries exactly 0."""
    r = rng.gamma(1.0, size=rows(np.empty(shape), axis).shape) + 0.05
    if zeros:
        r = np.where(rng.random(r.shape) < zeros, 0.0, r)
        r[..., 0] += 0.1  # no all-zero distribution
    r = r / r.sum(-1, keepdims=True)
    return _unrows(r, shape, axis)


def random_mask(rng, shape, axis=-1, keep=0.7):
    """A per-class boolean mask with at least one allowed entry per distribution."""
    r = rng.random(rows(np.empty(shape), axis).shape) < keep
    r[..., 0] = True
    r = np.take_along_axis(r, rng.permuted(np.argsort(r, -1), axis=-1), -1)
    return _unrows(r, shape, axis)


# Shapes with their reduction axes (int and tuple), and the mask kinds, shared by the
# oracle tables of the measures and the losses.
SHAPES_AXES = [
    ((5,), -1),
    ((3, 4), -1),
    ((3, 4), 0),
    ((2, 3, 4), 1),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (-1, -2)),
]
MASKS = [None, "per_class", "per_example"]
