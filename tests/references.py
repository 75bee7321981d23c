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

import mpmath
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


# Reweighted cross-entropies (focal, poly-1).


def sigmoid_focal_loss(logits, labels, alpha=None, gamma=2.0):
    """The focal paper's formula on float64 sigmoids (logits kept moderate by the tests)."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    p = special.expit(z)
    one_minus_pt = y * (1 - p) + (1 - y) * p
    loss = one_minus_pt**gamma * sigmoid_binary_cross_entropy(z, y)
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def softmax_focal_loss(
    logits, labels, gamma=2.0, axis=-1, where=None, class_weights=None, ignore_index=None
):
    """-w_c (1 - p_c)^gamma log p_c per row over the allowed classes; NaN for labels
    outside [0, K), 0 for ``ignore_index`` and for labels on masked-out classes."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    k = rows(logits, axis).shape[-1]
    w = np.ones(k) if class_weights is None else np.asarray(class_weights, np.float64).ravel()
    onehot = one_hot(labels, logits.shape, axis)
    w_full = _unrows(np.broadcast_to(w, rows(logits, axis).shape), logits.shape, axis)

    def row(z, t, wr):
        if not t.any():
            return 0.0
        logq = special.log_softmax(z)
        c = int(np.argmax(t))
        return -wr[c] * (-np.expm1(logq[c])) ** gamma * logq[c]

    out = _per_row(row, [logits, onehot, w_full], axis, where)
    out = np.where((labels < 0) | (labels >= k), np.nan, out)
    if ignore_index is not None:
        out = np.where(labels == ignore_index, 0.0, out)
    return out


def poly1_softmax_cross_entropy(logits, labels, epsilon=1.0, axis=-1, where=None, smoothing=0.0):
    """CE + epsilon * sum_j t_j (1 - p_j) over the allowed classes, t the smoothed labels."""

    def row(z, y):
        if z.size == 0:
            return 0.0
        t = (1 - smoothing) * y + smoothing / z.size
        return _xent_row(z, y, 1.0, smoothing, 0.0) + epsilon * np.sum(t * (1 - special.softmax(z)))

    return _per_row(row, [logits, labels], axis, where)


# Evaluation metrics.


def perplexity(losses, axis=None, where=None, base=None):
    x = np.asarray(losses, np.float64)
    axis = tuple(range(x.ndim)) if axis is None else axis
    with np.errstate(invalid="ignore"):
        mean = _per_row(lambda r: np.mean(r) if r.size else np.nan, [x], axis, where)
    return np.exp(mean * _unit(base))


def calibration_bins(probs, labels, num_bins=15):
    """torchmetrics' documented binning for one [N, K] problem: edges linspace(0, 1, B + 1),
    bin index ``bucketize(conf, edges, right=True) - 1`` (left-closed, conf = 1 alone in
    bin B); per bin: count, accuracy and mean confidence (0 when empty)."""
    probs = np.asarray(probs, np.float64)
    conf = probs.max(-1)
    correct = (probs.argmax(-1) == np.asarray(labels)).astype(np.float64)
    edges = np.arange(num_bins + 1) / num_bins
    index = np.searchsorted(edges, conf, side="right") - 1
    count = np.zeros(num_bins + 1)
    acc = np.zeros(num_bins + 1)
    mean_conf = np.zeros(num_bins + 1)
    for b in range(num_bins + 1):
        sel = index == b
        count[b] = sel.sum()
        if count[b]:
            acc[b] = correct[sel].mean()
            mean_conf[b] = conf[sel].mean()
    return count, acc, mean_conf


def expected_calibration_error(probs, labels, num_bins=15):
    count, acc, conf = calibration_bins(probs, labels, num_bins)
    return np.sum(count / count.sum() * np.abs(acc - conf))


def maximum_calibration_error(probs, labels, num_bins=15):
    _, acc, conf = calibration_bins(probs, labels, num_bins)
    return np.max(np.abs(acc - conf))


def brier_score(probs, labels, axis=-1, where=None):
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    k = rows(probs, axis).shape[-1]
    out = _per_row(
        lambda p, t: np.sum((p - t) ** 2), [probs, one_hot(labels, probs.shape, axis)], axis, where
    )
    return np.where((labels < 0) | (labels >= k), np.nan, out)


# Generalised entropies and divergences: Rényi, Tsallis, Jensen-Shannon, total variation,
# Hellinger. Orders are Python floats. The Rényi and Tsallis sums, whose closed forms divide
# 0 by 0 near order 1, are evaluated with 50 significant digits (mpmath).

_DIGITS = mpmath.mp.clone()
_DIGITS.dps = 50


def _power_mean(w_all, v, beta):
    """(1/beta) log(sum w e^(beta v) / sum w) over w > 0: Rényi's power mean."""
    keep = w_all > 0
    w, v = w_all[keep], v[keep]
    if np.isinf(beta):
        return np.max(v)
    mp = _DIGITS
    total = mp.fsum(mp.mpf(a) for a in w)
    if np.any(v == np.inf):
        if beta >= 0:
            return np.inf
        w, v = w[v < np.inf], v[v < np.inf]  # terms e^(beta * inf) = 0
        if w.size == 0:
            return np.inf
    if beta == 0:
        return float(mp.fsum(mp.mpf(a) * mp.mpf(b) for a, b in zip(w, v, strict=True)) / total)
    b = mp.mpf(beta)
    s = mp.fsum(mp.mpf(a) * mp.exp(b * mp.mpf(x)) for a, x in zip(w, v, strict=True))
    return float(mp.log(s / total) / b)


def renyi_entropy(p, alpha, axis=-1, where=None, base=None):
    def row(x):
        if np.sum(x) == 0:
            return 0.0
        with np.errstate(divide="ignore"):
            return -_power_mean(x, np.log(x), alpha - 1)

    return _per_row(row, [p], axis, where) / _unit(base)


def tsallis_entropy(p, q, axis=-1, where=None):
    def row(x):
        x = x[x > 0]
        if np.isinf(q):
            return 0.0
        mp = _DIGITS
        if q == 1:
            return float(-mp.fsum(mp.mpf(a) * mp.log(mp.mpf(a)) for a in x))
        b = mp.mpf(q) - 1
        return float(mp.fsum((mp.mpf(a) - mp.mpf(a) ** (b + 1)) / b for a in x))

    return _per_row(row, [p], axis, where)


def renyi_divergence(p, q, alpha, axis=-1, where=None, base=None):
    def row(a, b):
        if np.sum(a) == 0:
            return 0.0
        with np.errstate(divide="ignore"):
            v = np.where(b > 0, np.log(a) - np.log(b), np.inf)
        return _power_mean(a, v, alpha - 1)

    return _per_row(row, [p, q], axis, where) / _unit(base)


def js_divergence(p, q, axis=-1, where=None, base=None):
    def row(a, b):
        m = (a + b) / 2
        return 0.5 * np.sum(special.rel_entr(a, m) + special.rel_entr(b, m))

    return _per_row(row, [p, q], axis, where) / _unit(base)


def total_variation(p, q, axis=-1, where=None):
    return _per_row(lambda a, b: 0.5 * np.sum(np.abs(a - b)), [p, q], axis, where)


def hellinger(p, q, axis=-1, where=None):
    return _per_row(
        lambda a, b: np.sqrt(0.5 * np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)), [p, q], axis, where
    )


def _logits_to_probs(fn):
    """The oracle of ``fn`` on probabilities, applied to the softmaxes of two logit arrays."""

    def from_logits(a, b, *args, axis=-1, where=None, **kw):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        shape = a.shape
        mask = _unrows(_mask_rows(where, shape, axis), shape, axis)
        pa, pb = (
            _unrows(
                special.softmax(np.where(rows(mask, axis), rows(x, axis), -np.inf), -1), shape, axis
            )
            for x in (a, b)
        )
        return fn(np.nan_to_num(pa), np.nan_to_num(pb), *args, axis=axis, where=where, **kw)

    return from_logits


js_divergence_from_logits = _logits_to_probs(js_divergence)
renyi_divergence_from_logits = _logits_to_probs(renyi_divergence)


# Entropy estimators from histograms of counts (``jaxent.estimators``), one histogram at a
# time along the last axis after ``rows``; an all-zero histogram gives 0.


def _per_histogram(fn, counts, axis=-1):
    r = rows(np.asarray(counts, np.float64), axis)
    out = np.empty(r.shape[:-1])
    for idx in np.ndindex(*r.shape[:-1]):
        n = r[idx]
        out[idx] = fn(n) if n.sum() > 0 else 0.0
    return out


def _plugin_row(n):
    p = n[n > 0] / n.sum()
    return -np.sum(p * np.log(p))


def entropy_plugin(counts, axis=-1, base=None):
    """Miller (1955): the entropy of the empirical distribution."""
    return _per_histogram(_plugin_row, counts, axis) / _unit(base)


def entropy_miller_madow(counts, axis=-1, base=None):
    """Miller (1955): plug-in + (m - 1) / (2N), m the number of occupied bins."""

    def row(n):
        return _plugin_row(n) + (np.count_nonzero(n) - 1) / (2 * n.sum())

    return _per_histogram(row, counts, axis) / _unit(base)


def entropy_grassberger(counts, axis=-1, base=None):
    """Grassberger (2003): log N - sum n G(n) / N, G(n) = psi(n) + (-1)^n / 2 [psi((n+1)/2)
    - psi(n/2)], on integer counts."""

    def row(n):
        n = n[n > 0]
        sign = np.where(np.round(n) % 2 == 0, 1.0, -1.0)
        g = special.digamma(n) + 0.5 * sign * (
            special.digamma((n + 1) / 2) - special.digamma(n / 2)
        )
        return np.log(n.sum()) - np.sum(n * g) / n.sum()

    return _per_histogram(row, counts, axis) / _unit(base)


def entropy_chao_shen(counts, axis=-1, base=None):
    """Chao and Shen (2003): coverage-adjusted Horvitz-Thompson; f1 = N - 1 when f1 = N."""

    def row(n):
        n = n[n > 0]
        total = n.sum()
        f1 = np.count_nonzero(n == 1)
        if f1 == total:
            f1 = total - 1
        pa = (1 - f1 / total) * n / total
        la = 1 - (1 - pa) ** total
        return -np.sum(pa * np.log(pa) / la)

    return _per_histogram(row, counts, axis) / _unit(base)


def entropy_james_stein(counts, axis=-1, base=None):
    """Hausser and Strimmer (2009), eq. 5-8: shrinkage towards 1/K, lambda clipped to
    [0, 1]; lambda = 1 where N <= 1 or the counts are uniform."""

    def row(n):
        total, k = n.sum(), n.size
        u = n / total
        misfit = np.sum((1 / k - u) ** 2)
        if total <= 1 or misfit == 0:
            lam = 1.0
        else:
            lam = min(1.0, max(0.0, (1 - np.sum(u**2)) / ((total - 1) * misfit)))
        p = lam / k + (1 - lam) * u
        return np.sum(special.entr(p))

    return _per_histogram(row, counts, axis) / _unit(base)


def _nsb_row(n):
    """Nemenman, Shafee and Bialek (2002): the posterior mean entropy, by adaptive quadrature
    over xi in (0, log K), beta(xi) by root finding."""
    from scipy import integrate, optimize

    k, total = n.size, n.sum()
    if k == 1:
        return 0.0

    def beta(xi):
        def gap(log_b):
            b = np.exp(log_b)
            return special.digamma(k * b + 1) - special.digamma(b + 1) - xi

        return np.exp(optimize.brentq(gap, -60, 40, xtol=1e-14, rtol=1e-15))

    def log_evidence(b):
        return (
            special.gammaln(k * b)
            - special.gammaln(total + k * b)
            + np.sum(special.gammaln(n + b) - special.gammaln(b))
        )

    def mean_entropy(b):
        return special.digamma(total + k * b + 1) - np.sum((n + b) * special.digamma(n + b + 1)) / (
            total + k * b
        )

    log_k = np.log(k)
    peak = max(log_evidence(beta(x)) for x in np.linspace(0, log_k, 102)[1:-1])

    def weight(x):
        return np.exp(log_evidence(beta(x)) - peak)

    opts = {"limit": 500, "epsabs": 0, "epsrel": 1e-11}
    norm = integrate.quad(weight, 0, log_k, **opts)[0]
    first = integrate.quad(lambda x: weight(x) * mean_entropy(beta(x)), 0, log_k, **opts)[0]
    return first / norm


def entropy_nsb(counts, axis=-1, base=None):
    return _per_histogram(_nsb_row, counts, axis) / _unit(base)


def mutual_information_plugin(counts_xy, axes=(-2, -1), base=None, miller_madow=False):
    """H(X) + H(Y) - H(X, Y) of the empirical joint distribution (each Miller-Madow
    corrected on request), one table at a time."""
    c = np.moveaxis(np.asarray(counts_xy, np.float64), axes, (-2, -1))
    out = np.empty(c.shape[:-2])
    h = entropy_miller_madow if miller_madow else entropy_plugin
    for idx in np.ndindex(*c.shape[:-2]):
        t = c[idx]
        if t.sum() == 0:
            out[idx] = 0.0
            continue
        out[idx] = h(t.sum(1)) + h(t.sum(0)) - h(t.ravel())
    return out / _unit(base)


def random_counts(rng, shape, total, alpha=0.5):
    """Multinomial histograms of ``total`` draws from Dirichlet(alpha) distributions, bins
    along the last axis."""
    p = rng.dirichlet(np.full(shape[-1], alpha), size=shape[:-1])
    return rng.multinomial(total, p).astype(np.float64)


# Joint measures: tables [..., X, Y] with X, Y on ``axes``; masked cells are set to 0 (or
# to -inf logits); a table with no allowed cell gives 0.


def _tables(x, axes, where, fill):
    """(tables moved to (*batch, X, Y) in float64 with masked cells set to ``fill``, the
    flags of the tables with at least one allowed cell)."""
    x = np.asarray(x, np.float64)
    axes = _axes(axes, x.ndim)
    batch = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    keep = np.ones(batch, bool)
    if where is not None:
        where = np.asarray(where, bool)
        if where.shape == batch and len(batch) < x.ndim:
            where = np.expand_dims(where, axes)
        where = np.broadcast_to(where, x.shape)
        keep = np.any(where, axis=axes)
        x = np.where(where, x, fill)
    return np.moveaxis(x, axes, (-2, -1)), keep


def _per_table(fn, x, axes, where, fill):
    t, keep = _tables(x, axes, where, fill)
    out = np.zeros(t.shape[:-2])
    for idx in np.ndindex(*out.shape):
        if keep[idx]:
            out[idx] = fn(t[idx])
    return out


def _joint_terms(p):
    """H(X, Y), H(Y | X), I(X; Y), H(X), H(Y) of one table, in nats, cell by cell."""
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p != 0
    outer = np.broadcast_to(px * py, p.shape)
    cond = np.broadcast_to(px, p.shape)
    h_xy = np.sum(special.entr(p))
    h_y_x = np.sum(p[nz] * np.log(cond[nz] / p[nz]))
    # clipped at 0 as scikit-learn does: near independence rounding can leave it below.
    mi = max(np.sum(p[nz] * np.log(p[nz] / outer[nz])), 0.0)
    return h_xy, h_y_x, mi, np.sum(special.entr(px)), np.sum(special.entr(py))


def joint_entropy(joint, axes=(-2, -1), where=None, base=None):
    return _per_table(lambda t: _joint_terms(t)[0], joint, axes, where, 0.0) / _unit(base)


def conditional_entropy(joint, axes=(-2, -1), where=None, base=None):
    return _per_table(lambda t: _joint_terms(t)[1], joint, axes, where, 0.0) / _unit(base)


def mutual_information(joint, axes=(-2, -1), where=None, base=None):
    return _per_table(lambda t: _joint_terms(t)[2], joint, axes, where, 0.0) / _unit(base)


def _nmi(t):
    total = t.sum()
    _, _, mi, hx, hy = _joint_terms(t / total if total > 0 else t)  # scale-invariant
    one_x, one_y = np.sum(t.sum(1) != 0) <= 1, np.sum(t.sum(0) != 0) <= 1
    if one_x or one_y:  # a certain marginal: I = 0 exactly
        return 1.0 if one_x and one_y else 0.0
    return 2 * mi / (hx + hy)


def normalized_mutual_information(joint, axes=(-2, -1), where=None):
    return _per_table(_nmi, joint, axes, where, 0.0)


def _softmax_table(z):
    """The softmax of one table of logits over both axes (all -inf: all 0)."""
    if np.all(z == -np.inf):
        return np.zeros_like(z)
    return special.softmax(z)


def joint_entropy_from_logits(joint_logits, axes=(-2, -1), where=None, base=None):
    f = lambda z: _joint_terms(_softmax_table(z))[0]  # noqa: E731
    return _per_table(f, joint_logits, axes, where, -np.inf) / _unit(base)


def conditional_entropy_from_logits(joint_logits, axes=(-2, -1), where=None, base=None):
    def row(z):
        # sum_x p_x H(softmax(z_x)), in log space.
        if np.all(z == -np.inf):
            return 0.0
        log_p = special.log_softmax(z, axis=None)
        with np.errstate(invalid="ignore"):  # rows of -inf
            log_c = z - special.logsumexp(z, axis=1, keepdims=True)
        keep = np.isfinite(log_p)
        return -np.sum(np.exp(log_p[keep]) * log_c[keep])

    return _per_table(row, joint_logits, axes, where, -np.inf) / _unit(base)


def mutual_information_from_logits(joint_logits, axes=(-2, -1), where=None, base=None):
    def row(z):
        if np.all(z == -np.inf):
            return 0.0
        log_p = special.log_softmax(z, axis=None)
        log_px = special.logsumexp(log_p, axis=1, keepdims=True)
        log_py = special.logsumexp(log_p, axis=0, keepdims=True)
        keep = np.isfinite(log_p)
        with np.errstate(invalid="ignore"):  # rows and columns of -inf
            rho = log_p - log_px - log_py
        return max(np.sum(np.exp(log_p[keep]) * rho[keep]), 0.0)

    return _per_table(row, joint_logits, axes, where, -np.inf) / _unit(base)


def dit_joint_measures(table):
    """H(X, Y), H(Y | X), I(X; Y) in bits of one 2-D table, by ``dit``."""
    import dit  # imported here: slow to import, and needed by one test
    from dit.shannon import conditional_entropy, entropy, mutual_information

    nx, ny = table.shape
    outcomes = [(x, y) for x in range(nx) for y in range(ny)]
    d = dit.Distribution(outcomes, list(np.asarray(table, np.float64).ravel()))
    return entropy(d), conditional_entropy(d, [1], [0]), mutual_information(d, [0], [1])


def labels_from_counts(counts):
    """Two label vectors whose contingency table is the integer table ``counts``."""
    counts = np.asarray(counts)
    xs, ys = np.nonzero(counts)
    reps = counts[xs, ys]
    return np.repeat(xs, reps), np.repeat(ys, reps)


# Gaussians.


def gaussian_entropy(cov, base=None):
    from scipy import stats

    cov = np.asarray(cov, np.float64)
    out = np.empty(cov.shape[:-2])
    for idx in np.ndindex(*out.shape):
        out[idx] = stats.multivariate_normal(cov=cov[idx]).entropy()
    return out / _unit(base)


def gaussian_kl(mean_p, cov_p, mean_q, cov_q, base=None):
    """The textbook formula with inverses and log-determinants, one pair at a time."""
    mean_p, cov_p, mean_q, cov_q = (
        np.asarray(a, np.float64) for a in (mean_p, cov_p, mean_q, cov_q)
    )
    out = np.empty(mean_p.shape[:-1])
    for idx in np.ndindex(*out.shape):
        inv_q = np.linalg.inv(cov_q[idx])
        dm = mean_q[idx] - mean_p[idx]
        out[idx] = 0.5 * (
            np.trace(inv_q @ cov_p[idx])
            + dm @ inv_q @ dm
            - dm.size
            + np.linalg.slogdet(cov_q[idx])[1]
            - np.linalg.slogdet(cov_p[idx])[1]
        )
    return out / _unit(base)


def gaussian_kl_diag(mean_p, log_var_p, mean_q, log_var_q, base=None):
    mp, lvp, mq, lvq = (np.asarray(a, np.float64) for a in (mean_p, log_var_p, mean_q, log_var_q))
    terms = np.exp(lvp - lvq) - 1 - (lvp - lvq) + (mp - mq) ** 2 / np.exp(lvq)
    return 0.5 * np.sum(terms, -1) / _unit(base)


def gaussian_entropy_mp(cov, dps=60):
    """Differential entropy (nats) of one covariance, exactly as given, with mpmath."""
    import mpmath

    with mpmath.workdps(dps):
        a = mpmath.matrix(np.asarray(cov, np.float64).tolist())
        d = a.rows
        return float(d * (1 + mpmath.log(2 * mpmath.pi)) / 2 + mpmath.log(mpmath.det(a)) / 2)


def gaussian_kl_mp(mean_p, cov_p, mean_q, cov_q, dps=60):
    """KL divergence (nats) of one pair, exactly as given, with mpmath."""
    import mpmath

    def mat(x):
        return mpmath.matrix(np.asarray(x, np.float64).tolist())

    with mpmath.workdps(dps):
        cp, cq = mat(cov_p), mat(cov_q)
        dm = mat(mean_q) - mat(mean_p)
        inv_q = mpmath.inverse(cq)
        tr = sum((inv_q * cp)[i, i] for i in range(cp.rows))
        maha = (dm.T * inv_q * dm)[0, 0]
        logdet = mpmath.log(mpmath.det(cq)) - mpmath.log(mpmath.det(cp))
        return float((tr + maha - cp.rows + logdet) / 2)


def ill_conditioned_covariance(rng, d, cond):
    """A random SPD matrix with eigenvalues log-spaced from 1 down to 1/cond."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam = np.logspace(0, -np.log10(cond), d)
    c = (q * lam) @ q.T
    return (c + c.T) / 2
