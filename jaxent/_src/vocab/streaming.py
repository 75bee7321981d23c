r"""The streaming linear + softmax cross-entropy: vocabulary chunks, an online log-sum-exp.

The logits are handled in ``[T, C]`` blocks: T tokens (a tile of the N tokens) by C
vocabulary columns (a chunk of the V classes). Forward: for each token tile, one pass over
the vocabulary chunks computes each block's logits ``hidden @ weight[:, chunk]
(+ bias[chunk])`` with float32 accumulation and folds them into a running maximum and sum
(the online log-sum-exp), the label's logit and, for label smoothing, the sum of the
logits. Backward: for each vocabulary chunk, a pass over the token tiles recomputes the
block's logits from the saved inputs and per-token log-sum-exp, forms the logits' gradient
scaled by the incoming per-token cotangents, and accumulates the gradients of ``hidden``
(over chunks, in float32) and of ``weight`` and ``bias`` (over tiles, one chunk at a time).
No ``[N, V]`` array exists.

The weight is sliced chunk by chunk in its own dtype and multiplied with
``preferred_element_type``, so a bfloat16 weight is never copied whole to float32.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .. import arguments
from ..arguments import LabelStatus, SoftmaxOptions
from .stats import (
    GradCoefficients,
    RowStats,
    grad_coefficients,
    log_sum_exp,
    loss_from_stats,
    merge_max_sum,
)

#: Logits per ``[T, C]`` block that the default sizes aim for (16 MiB in float32).
BLOCK_ELEMENTS = 2**22
#: The default vocabulary chunk C (fewer columns when V is smaller).
DEFAULT_CHUNK = 2048
#: The default token tile never has fewer rows than this (nor more than N).
MIN_TILE = 256
#: The default vocabulary chunk never has fewer columns than this (nor more than V).
MIN_CHUNK = 128


def default_chunk_sizes(num_tokens: int, vocab_size: int, features: int) -> tuple[int, int]:
    r"""The vocabulary chunk C and token tile T that ``None`` sizes pick.

    .. math::
        C = \min\bigl(V, 2048, \max(128, 128 \lfloor 2^{22} / (128 D) \rfloor)\bigr),
        \qquad T = \min\bigl(N, \max(256, \lfloor 2^{22} / \max(C, D) \rfloor)\bigr),

    so that the ``[T, C]`` logits block, the ``[T, D]`` and ``[D, C]`` products each hold
    at most about :math:`2^{22}` elements (16 MiB in float32) once N and V are large:
    2048 x 2048 blocks for D = 512, 1024 x 1024 for D = 4096, all N tokens at once when
    N is small, and long token tiles for a small vocabulary.
    """
    c = MIN_CHUNK * (BLOCK_ELEMENTS // (MIN_CHUNK * max(features, 1)))
    chunk = max(1, min(vocab_size, DEFAULT_CHUNK, max(MIN_CHUNK, c)))
    return chunk, _default_tile(num_tokens, chunk, features)


def _default_tile(num_tokens: int, chunk: int, features: int) -> int:
    tile = BLOCK_ELEMENTS // max(chunk, features, 1)
    return max(1, min(num_tokens, max(MIN_TILE, tile)))


#: The bounded sizes keep the blocks' scratch within this percentage of the logits...
SCRATCH_PERCENT = 1
#: ...or within this many elements (4 MiB in float32), when that is more.
MIN_SCRATCH = 2**20
#: The bounded sizes are multiples of this (or all N tokens, all V classes), never less.
BLOCK_ALIGN = 128
#: Scratch per element of D of the two backward orders, (per chunk column, per tile row):
#: the vocabulary-parallel pass (tiles outside, chunks inside) holds one ``[D, C]`` and
#: three ``[T, D]`` buffers, the single-device pass (chunks outside) three and two.
BY_TILE_COSTS = (1, 3)
BY_CHUNK_COSTS = (3, 2)


def bounded_chunk_sizes(
    num_tokens: int,
    vocab_size: int,
    features: int,
    *,
    costs: tuple[int, int],
    chunk_size: int | None = None,
    token_chunk_size: int | None = None,
) -> tuple[int, int]:
    r"""The vocabulary chunk C and token tile T whose scratch fits in 1% of the logits.

    The compiler's scratch for ``[T, C]`` blocks is modelled as
    :math:`S(T, C) = D\,(a C + b T) + T C` elements (``costs`` :math:`= (a, b)`, measured
    with ``memory_analysis()`` on the CPU backend: (1, 3) for the backward pass that loops
    over token tiles outside, (3, 2) for the one that loops over chunks outside), against
    a budget of :math:`B = \max(N V / 100, 2^{20})` elements: 1% of the ``[N, V]`` logits,
    or 4 MiB in float32 for small problems, where blocks that small would only be slow.
    Square blocks come first: :math:`T = C = s`, the largest multiple of 128 with
    :math:`S(s, s) \le B`; when N (or V) is smaller than s, T = N (C = V) and the other
    side takes the rest of the budget, in multiples of 128. Neither exceeds
    ``default_chunk_sizes`` (the single-device defaults), and neither is less than 128
    (or N, V): where even 128 x 128 blocks exceed B, those are used. Each is then shrunk,
    in multiples of 128, to split N (V) into equal blocks as nearly as it can. A size
    passed as ``chunk_size`` or ``token_chunk_size`` is kept and the other one fitted to it.

    At N = 8192, V = 32000 (256000 classes on 8 devices), D = 4096 that is 128 x 128
    blocks; at N = 256, V = 4096, D = 128, 256 x 2048, the unbounded defaults.
    """
    n, v, d = num_tokens, vocab_size, features
    a, b = costs
    budget = max(n * v * SCRATCH_PERCENT // 100, MIN_SCRATCH)
    cap = default_chunk_sizes(n, v, d)[0]

    def aligned(x: int, total: int, limit: int) -> int:
        return max(1, min(total, limit, max(BLOCK_ALIGN, x // BLOCK_ALIGN * BLOCK_ALIGN)))

    def widest(tile: int) -> int:
        return aligned((budget - b * d * tile) // (a * d + tile), v, cap)

    def longest(chunk: int) -> int:
        t = (budget - a * d * chunk) // (b * d + chunk)
        return aligned(t, n, _default_tile(n, chunk, d))

    if chunk_size is not None and token_chunk_size is not None:
        return min(v, chunk_size), max(1, min(n, token_chunk_size))
    if chunk_size is not None:
        return min(v, chunk_size), _even(longest(min(v, chunk_size)), n)
    if token_chunk_size is not None:
        tile = max(1, min(n, token_chunk_size))
        return _even(widest(tile), v), tile
    # The square side s: s^2 + (a + b) D s <= B.
    s = (math.isqrt(((a + b) * d) ** 2 + 4 * budget) - (a + b) * d) // 2
    s = max(BLOCK_ALIGN, s // BLOCK_ALIGN * BLOCK_ALIGN)
    if n <= s:
        chunk, tile = widest(n), n
    elif v <= s:
        chunk, tile = v, longest(v)
    else:
        chunk = min(s, cap)
        tile = min(s, _default_tile(n, chunk, d))
    return _even(chunk, v), _even(tile, n)


def _even(size: int, total: int) -> int:
    """``size`` shrunk, in multiples of 128, to split ``total`` into as many blocks as
    evenly as it can (1000 in two blocks of 512, not 896 and a shifted 896)."""
    if size >= total:
        return size
    per_block = -(-total // block_count(total, size))
    return min(size, -(-per_block // BLOCK_ALIGN) * BLOCK_ALIGN)


class _Config(NamedTuple):
    """Static options of the loss (hashable: the custom_vjp's nondiff argument)."""

    chunk: int
    tile: int
    opts: SoftmaxOptions
    softcap: float | None
    return_lse: bool


DOT_NN = (((1,), (0,)), ((), ()))  # [T, D] @ [D, C]
DOT_NT = (((1,), (1,)), ((), ()))  # [T, C] @ [D, C]^T
DOT_TN = (((0,), (0,)), ((), ()))  # [T, D]^T @ [T, C]


def block_count(total: int, size: int) -> int:
    return -(-total // size)


def block_start(i: jax.Array, total: int, size: int) -> jax.Array:
    """The first index of block i; the last block is shifted back to end at ``total``."""
    return jnp.minimum(i * size, total - size)


def slice_block(x, start, size: int, axis: int):
    """``x`` sliced to ``[start, start + size)`` along ``axis``, in ``x``'s dtype."""

    def plain(x, start):
        return lax.dynamic_slice_in_dim(x, start, size, axis=axis)

    if jnp.dtype(x.dtype).itemsize >= 4:
        return plain(x, start)

    def cpu(x, start):
        # XLA's CPU backend slices 16-bit floats through float32 and then hoists that
        # conversion out of the loop, onto the whole array (a float32 copy of the weight).
        # Inside a conditional the conversion stays on the slice.
        return lax.cond(start >= 0, plain, lambda x, s: plain(x, 0 * s), x, start)

    return lax.platform_dependent(x, start, cpu=cpu, default=plain)


def filled(shape, value, dtype, *like: jax.Array | None) -> jax.Array:
    """A constant loop carry, varying over the manual mesh axes that any of ``like`` varies
    over (inside ``jax.shard_map`` with ``check_vma``), so that the loop's types match."""
    x = jnp.full(shape, value, dtype)
    axes = set().union(*(jax.typeof(a).manual_axis_type.varying for a in like if a is not None))
    return lax.pcast(x, tuple(sorted(axes)), to="varying") if axes else x


def _block_logits(ht, w, b, col0, cfg: _Config, dtype):
    """Logits of one block (capped when asked), the raw-to-capped slope, and the chunk."""
    wc = slice_block(w, col0, cfg.chunk, axis=1)
    z = lax.dot_general(ht, wc, DOT_NN, preferred_element_type=dtype)
    if b is not None:
        z = z + lax.dynamic_slice_in_dim(b, col0, cfg.chunk).astype(dtype)
    slope = None
    if cfg.softcap is not None:
        t = jnp.tanh(z / cfg.softcap)
        z = cfg.softcap * t
        slope = 1 - t * t
    return z, slope, wc


def fresh_indices(i, start, size: int, total: int, shape):
    """Indices of block i along an axis of ``shape`` (size > 1), and which are new."""
    axis = 0 if shape[0] > 1 else 1
    idx = start + lax.broadcasted_iota(jnp.int32, shape, axis)
    return idx, (None if total % size == 0 else idx >= i * size)


def _tile_stats(ht, lt, w, b, cfg: _Config, dtype):
    """Log-sum-exp, label logit and logit sum of T tokens, streamed over vocabulary chunks."""
    t, vocab = ht.shape[0], w.shape[1]

    def body(carry, i):
        m, s, z_label, z_sum = carry
        col0 = block_start(i, vocab, cfg.chunk)
        z, _, _ = _block_logits(ht, w, b, col0, cfg, dtype)
        cols, fresh = fresh_indices(i, col0, cfg.chunk, vocab, (1, cfg.chunk))
        m, s = merge_max_sum(m, s, z if fresh is None else jnp.where(fresh, z, -jnp.inf))
        hit = cols == lt[:, None]
        if fresh is not None:
            hit = hit & fresh
        z_label = z_label + jnp.sum(jnp.where(hit, z, 0), axis=1)
        if cfg.opts.label_smoothing:
            z_sum = z_sum + jnp.sum(z if fresh is None else jnp.where(fresh, z, 0), axis=1)
        return (m, s, z_label, z_sum), None

    zero = filled((t,), 0, dtype, ht, lt, w, b)
    init = (filled((t,), -jnp.inf, dtype, ht, lt, w, b), zero, zero, zero)
    xs = jnp.arange(block_count(vocab, cfg.chunk), dtype=jnp.int32)
    (m, s, z_label, z_sum), _ = lax.scan(body, init, xs)
    return RowStats(log_sum_exp(m, s), z_label, z_sum)


def forward(h, w, b, labels, cfg: _Config):
    """Per-token log-sum-exp, label logit and logit sum, tile by tile."""
    n = h.shape[0]
    dtype = arguments.compute_dtype(h, w) if b is None else arguments.compute_dtype(h, w, b)
    tiles = block_count(n, cfg.tile)
    if tiles == 1:
        return _tile_stats(h, labels, w, b, cfg, dtype)

    def tile(t):
        row0 = block_start(t, n, cfg.tile)
        ht = slice_block(h, row0, cfg.tile, axis=0)
        lt = lax.dynamic_slice_in_dim(labels, row0, cfg.tile)
        return _tile_stats(ht, lt, w, b, cfg, dtype)

    stacked = lax.map(tile, jnp.arange(tiles, dtype=jnp.int32))
    # The last tile was shifted back to end at row N: keep only its rows not seen before.
    skip = tiles * cfg.tile - n
    return RowStats(*(jnp.concatenate([y[:-1].reshape(-1), y[-1, skip:]]) for y in stacked))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused(h, w, b, status: LabelStatus, cfg: _Config):
    stats = forward(h, w, b, status.target, cfg)
    loss = loss_from_stats(stats, status, cfg.opts, w.shape[1])
    # One [2, N] output, not a pair: under vmap the pair's lse would be unbatched when
    # only the labels or the mask are, and its summed cotangent would then reach every
    # batch member of the (batched) backward pass.
    return jnp.stack([loss, stats.lse]) if cfg.return_lse else loss


def _fused_fwd(h, w, b, status: LabelStatus, cfg: _Config):
    stats = forward(h, w, b, status.target, cfg)
    loss = loss_from_stats(stats, status, cfg.opts, w.shape[1])
    out = jnp.stack([loss, stats.lse]) if cfg.return_lse else loss
    return out, (h, w, b, status, stats.lse)


def _fused_bwd(cfg: _Config, residuals, cotangent):
    r"""Recomputes each block's logits and accumulates the gradients block by block.

    Residuals, for N tokens, D features and V classes (the first three are the inputs
    themselves, not copies):

    - ``h``: the hidden states, ``[N, D]``, input dtype;
    - ``w``: the weight, ``[D, V]``, input dtype; ``b``: the bias, ``[V]``, or None;
    - ``status``: the labels' meaning, ``[N]`` int32 class indices and two ``[N]`` bool
      flags (token counted; label invalid);
    - ``lse``: the per-token log-sum-exp, ``[N]``, compute dtype.

    That is O(N) beyond the inputs. With :math:`g` the loss cotangent and :math:`g_\ell`
    the log-sum-exp cotangent, the logits' gradient of token n is
    :math:`(g_n (1 + 2\zeta\,\mathrm{lse}_n) + g_{\ell,n})\, p_n - g_n (1-\epsilon) e_{c_n}
    - g_n \epsilon / V` (the :math:`g_n` terms only for counted tokens; NaN for an invalid
    label), times :math:`1 - \tanh^2` under a soft cap. The working set is a few
    ``[T, C]`` blocks, a ``[T, D]`` product, a float32 ``[D, C]`` accumulator for the
    weight's chunk and a float32 ``[N, D]`` accumulator for the hidden gradient.
    """
    h, w, b, status, lse = residuals
    g_loss, g_lse = cotangent if cfg.return_lse else (cotangent, None)
    coef = grad_coefficients(g_loss, g_lse, lse, status, cfg.opts, w.shape[1])
    return (*backward(h, w, b, coef, lse, status.target, cfg), None)


def block_gradient(ht, tok, w, b, i, col0, row_fresh, cfg: _Config, dtype, dz_dtype):
    """The logits' gradient of one [T, C] block (chunk i, from column col0), and the chunk
    of the weight. ``tok`` holds the block's per-token alpha, beta, gamma, log-sum-exp and
    target column; ``row_fresh`` marks the rows not seen in an earlier tile (or None)."""
    alpha_t, beta_t, gamma_t, lse_t, lt = (x[:, None] for x in tok)
    z, slope, wc = _block_logits(ht, w, b, col0, cfg, dtype)
    cols, col_fresh = fresh_indices(i, col0, cfg.chunk, w.shape[1], (1, cfg.chunk))
    # A row with alpha = 0 (skipped, no lse cotangent) has gradient exactly 0, even
    # where its hidden state holds NaN or inf.
    p = jnp.where(alpha_t != 0, jnp.exp(z - lse_t), 0)
    dz = alpha_t * p - jnp.where(cols == lt, beta_t, 0)
    if cfg.opts.label_smoothing:
        dz = dz - gamma_t
    if slope is not None:
        dz = dz * slope
    for fresh in (col_fresh, row_fresh):
        if fresh is not None:
            dz = jnp.where(fresh, dz, 0)
    return dz.astype(dz_dtype), wc


def dead_tokens(coef: GradCoefficients) -> jax.Array:
    """The tokens whose logits' gradient is 0 (skipped, or no cotangent)."""
    return (coef.alpha == 0) & (coef.beta == 0) & (coef.gamma == 0)


def live_rows(ht: jax.Array, dead_t: jax.Array) -> jax.Array:
    """A block of hidden states with the rows of ``dead_t`` tokens read as 0: such a token
    takes no part in the weight's and bias's gradients even where its hidden state holds
    NaN or inf (0 * NaN in h^T dz)."""
    return jnp.where(dead_t[:, None], jnp.zeros((), ht.dtype), ht)


def backward(h, w, b, coef: GradCoefficients, lse, target, cfg: _Config):
    """The gradients of ``h``, ``w`` and ``b`` for per-token coefficients ``coef``.

    ``target`` holds each token's label as a column of ``w`` (any other value, such as a
    label held by another vocabulary shard, marks no column).
    """
    n, vocab = h.shape[0], w.shape[1]
    dtype = lse.dtype
    per_token = (*coef, lse, target)
    # Half-precision inputs multiply dz rounded to their dtype, accumulating in float32.
    dz_dtype = jnp.promote_types(h.dtype, w.dtype)
    tiles = block_count(n, cfg.tile)
    dead = dead_tokens(coef)

    def block(ht, tok, i, col0, row_fresh):
        return block_gradient(ht, tok, w, b, i, col0, row_fresh, cfg, dtype, dz_dtype)

    def chunk_step(carry, i):
        dh, dw, db = carry
        col0 = block_start(i, vocab, cfg.chunk)
        if tiles == 1:
            hl = live_rows(h, dead)
            dz, wc = block(hl, per_token, i, col0, None)
            dh = dh + lax.dot_general(dz, wc, DOT_NT, preferred_element_type=dtype)
            dwc = lax.dot_general(hl, dz, DOT_TN, preferred_element_type=dtype)
            dbc = jnp.sum(dz, axis=0, dtype=dtype)
        else:

            def tile_step(inner, t):
                dh, dwc, dbc = inner
                row0 = block_start(t, n, cfg.tile)
                tok = tuple(lax.dynamic_slice_in_dim(x, row0, cfg.tile) for x in per_token)
                ht = live_rows(
                    slice_block(h, row0, cfg.tile, axis=0),
                    lax.dynamic_slice_in_dim(dead, row0, cfg.tile),
                )
                _, row_fresh = fresh_indices(t, row0, cfg.tile, n, (cfg.tile, 1))
                dz, wc = block(ht, tok, i, col0, row_fresh)
                dht = lax.dynamic_slice_in_dim(dh, row0, cfg.tile)
                dht = dht + lax.dot_general(dz, wc, DOT_NT, preferred_element_type=dtype)
                dh = lax.dynamic_update_slice_in_dim(dh, dht, row0, axis=0)
                dwc = dwc + lax.dot_general(ht, dz, DOT_TN, preferred_element_type=dtype)
                dbc = dbc + jnp.sum(dz, axis=0, dtype=dtype)
                return (dh, dwc, dbc), None

            like = (h, w, b, *per_token)
            init = (
                dh,
                filled((h.shape[1], cfg.chunk), 0, dtype, *like),
                filled((cfg.chunk,), 0, dtype, *like),
            )
            xs = jnp.arange(tiles, dtype=jnp.int32)
            (dh, dwc, dbc), _ = lax.scan(tile_step, init, xs)
        dw = lax.dynamic_update_slice_in_dim(dw, dwc.astype(w.dtype), col0, axis=1)
        if db is not None:
            db = lax.dynamic_update_slice_in_dim(db, dbc.astype(b.dtype), col0, axis=0)
        return (dh, dw, db), None

    # The last chunk may overlap the one before it; its already-covered columns get a zero
    # gradient in dz, and writing them again would erase the earlier chunk's values, so
    # the chunks run from last to first: each column's final write is its first chunk's.
    like = (h, w, b, *per_token)
    init = (
        filled((n, h.shape[1]), 0, dtype, *like),
        filled(w.shape, 0, w.dtype, *like),
        None if b is None else filled(b.shape, 0, b.dtype, *like),
    )
    xs = jnp.arange(block_count(vocab, cfg.chunk), dtype=jnp.int32)
    (dh, dw, db), _ = lax.scan(chunk_step, init, xs, reverse=True)
    return dh.astype(h.dtype), dw, db


_fused.defvjp(_fused_fwd, _fused_bwd)


def linear_softmax_cross_entropy(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
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
    r"""Softmax cross-entropy of a linear layer's logits, without materialising the logits.

    With logits :math:`z = h W + b` (soft-capped to :math:`\kappa \tanh(z / \kappa)` when
    ``logit_softcap`` :math:`= \kappa` is given), each token's loss is that of
    ``softmax_cross_entropy_with_integer_labels`` on :math:`z`:

    .. math::
        \ell(h, c) = \operatorname{lse}(z) - (1 - \epsilon)\, z_c
        - \frac{\epsilon}{V} \sum_{j=1}^{V} z_j + \zeta \operatorname{lse}(z)^2,

    0 with gradient 0 for a token whose label is ``ignore_index`` or that ``where``
    excludes, and NaN (value and gradients) for any other label outside ``[0, V)``. The
    ``[tokens, V]`` logits are never formed: the forward pass streams over vocabulary
    chunks with an online log-sum-exp, and a custom backward pass recomputes each chunk's
    logits to accumulate the gradients of ``hidden``, ``weight`` and ``bias``, scaled by
    each token's incoming cotangent (a per-token weighted sum gets exact gradients). Logits
    are accumulated in float32 (float64 for float64 inputs) in both passes.

    The logits are handled in ``[T, C]`` blocks of T tokens by C classes. Memory beyond
    the inputs and gradients: a few such blocks, a ``[T, D]`` product, a float32
    ``[D, C]`` accumulator, a float32 ``[N, D]`` accumulator for the gradient of
    ``hidden`` (the gradient itself for float32 inputs), and O(N) per-token values. The
    default sizes are :math:`C = \min(V, 2048, \max(128, 128 \lfloor 2^{22} / 128 D
    \rfloor))` and :math:`T = \min(N, \max(256, \lfloor 2^{22} / \max(C, D) \rfloor))`:
    blocks and products of at most about :math:`2^{22}` elements (16 MiB in float32) for
    large N and V (2048 x 2048 blocks for D = 512, 1024 x 1024 for D = 4096), all tokens
    at once when N is small, and long token tiles for small vocabularies. V need not be a
    multiple of C, nor N of T: the last chunk (tile) is shifted back to end at V (N) and
    its repeated columns (rows) are masked. Compute is that of the dense computation plus
    one more ``[N, D] @ [D, V]`` product (the logits recomputed in the backward pass).

    Args:
      hidden: the last hidden states, shape ``[..., D]``, floating dtype.
      weight: the output projection, shape ``[D, V]``, floating dtype.
      labels: integer class indices, shape ``[...]`` (``hidden``'s without ``D``).
      bias: optional output bias, shape ``[V]``.
      chunk_size: vocabulary columns per chunk, C (static), or None for the default.
      token_chunk_size: tokens per tile, T (static), or None for the default.
      ignore_index: a label value marking tokens to skip (static), or None.
      label_smoothing: :math:`\epsilon \in [0, 1)` (static).
      z_loss: :math:`\zeta \ge 0`, the weight of the squared log-normaliser (static).
      logit_softcap: :math:`\kappa > 0` (static, finite), or None for no cap.
      where: optional boolean mask of ``labels``' shape; False tokens give 0, gradient 0.
      return_lse: also return each token's log-sum-exp over the whole vocabulary (for
        every token, masked and ignored ones included; differentiable).

    Returns:
      The per-token loss, ``labels``' shape, in the compute dtype (float32 for bfloat16 or
      float16 inputs, float64 for float64); with ``return_lse``, the pair ``(loss, lse)``.
      Gradients come back in each input's dtype.

    Raises:
      TypeError: ``hidden``, ``weight`` or ``bias`` is not floating, ``labels`` is not
        integer, ``where`` is not boolean, or a static option has the wrong type.
      ValueError: the shapes do not match, or an option is out of range.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> kh, kw = jax.random.split(jax.random.key(0))
      >>> hidden = jax.random.normal(kh, (2, 3, 8))         # [batch, time, D]
      >>> weight = jax.random.normal(kw, (8, 50)) / 4       # [D, V]
      >>> labels = jnp.array([[1, 7, 49], [3, -100, -100]])
      >>> def loss_fn(hidden, weight):
      ...     loss = je.linear_softmax_cross_entropy(
      ...         hidden, weight, labels, chunk_size=16, ignore_index=-100)
      ...     return loss.sum() / (labels != -100).sum()
      >>> value, (dh, dw) = jax.value_and_grad(loss_fn, argnums=(0, 1))(hidden, weight)
      >>> dense = je.softmax_cross_entropy_with_integer_labels(
      ...     hidden @ weight, labels, ignore_index=-100)
      >>> print(f"{value:.4f} {dense.sum() / 4:.4f} {dh.shape} {dw.shape}")
      3.6671 3.6671 (2, 3, 8) (8, 50)

    References:
      E. Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2025.
      M. Milakov and N. Gimelshein, "Online normalizer calculation for softmax", 2018.
    """
    args = prepare(
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
    labels, cfg, n, d = args.labels, args.cfg, args.num_tokens, args.hidden.shape[-1]
    status = arguments.label_status(
        labels, args.weight.shape[1], ignore_index=cfg.opts.ignore_index, row_mask=args.where
    )
    if n == 0:
        empty = jnp.zeros(labels.shape, args.dtype)
        return (empty, empty) if return_lse else empty

    def run(hidden, weight, bias, status):
        flat = LabelStatus(*(x.reshape(n) for x in status))
        out = _fused(hidden.reshape(n, d), weight, bias, flat, cfg)
        if cfg.return_lse:
            return out[0].reshape(labels.shape), out[1].reshape(labels.shape)
        return out.reshape(labels.shape)

    explicit = jax.sharding.get_abstract_mesh().explicit_axes
    if explicit:
        # Sharding-typed arrays (Explicit mesh axes) reject the flattening of sharded token
        # axes, the loops' replicated carries and the tiles' dynamic slices: stream with
        # those axes Auto, the per-token outputs sharded like hidden's token axes.
        spec = jax.sharding.PartitionSpec(*jax.typeof(args.hidden).sharding.spec[:-1])
        run = jax.sharding.auto_axes(
            run, axes=explicit, out_sharding=(spec, spec) if cfg.return_lse else spec
        )
    return run(args.hidden, args.weight, args.bias, status)


class Arguments(NamedTuple):
    """The validated arguments of a streaming loss, and its static configuration."""

    hidden: jax.Array
    weight: jax.Array
    labels: jax.Array
    bias: jax.Array | None
    where: jax.Array | None
    cfg: _Config
    num_tokens: int
    dtype: jnp.dtype


def prepare(
    hidden,
    weight,
    labels,
    *,
    bias,
    chunk_size,
    token_chunk_size,
    ignore_index,
    label_smoothing,
    z_loss,
    logit_softcap,
    where,
    return_lse,
) -> Arguments:
    """Checks the arguments of ``linear_softmax_cross_entropy`` (static facts only) and
    picks the block sizes; ``weight`` may be one shard of the vocabulary."""
    hidden = arguments.as_array(hidden, "hidden")
    weight = arguments.as_array(weight, "weight")
    labels = arguments.as_array(labels, "labels")
    arguments.require_float(hidden, "hidden")
    arguments.require_float(weight, "weight")
    arguments.require_integer(labels, "labels")
    if hidden.ndim < 1 or weight.ndim != 2 or hidden.shape[-1] != weight.shape[0]:
        raise ValueError(
            "`hidden` must be [..., D] and `weight` [D, V] with the same D, got "
            f"hidden.shape={hidden.shape} and weight.shape={weight.shape}."
        )
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(
            f"`labels` must have hidden's shape without its last axis: hidden.shape="
            f"{hidden.shape} needs labels.shape={hidden.shape[:-1]}, got {labels.shape}."
        )
    d, vocab = weight.shape
    if vocab == 0:
        raise ValueError("`weight` must have at least one class (V >= 1), got V=0.")
    if bias is not None:
        bias = arguments.as_array(bias, "bias")
        arguments.require_float(bias, "bias")
        if bias.shape != (vocab,):
            raise ValueError(f"`bias` must have shape ({vocab},), got {bias.shape}.")
    opts = SoftmaxOptions.validate(label_smoothing, z_loss, ignore_index)
    return_lse = arguments.static_flag(return_lse, "return_lse")
    cap = None
    if logit_softcap is not None:
        cap = arguments.static_number(logit_softcap, "logit_softcap")
        if not (cap > 0 and math.isfinite(cap)):
            raise ValueError(
                f"`logit_softcap` must be positive and finite (or None for no cap), got "
                f"{logit_softcap!r}."
            )
    n = math.prod(labels.shape)
    for name, size in (("chunk_size", chunk_size), ("token_chunk_size", token_chunk_size)):
        if size is not None and (arguments.static_index(size, name) or 0) < 1:
            raise ValueError(f"`{name}` must be a positive int or None, got {size!r}.")
    chunk = min(vocab, int(chunk_size or default_chunk_sizes(n, vocab, d)[0]))
    tile = max(1, min(n, int(token_chunk_size or _default_tile(n, chunk, d))))
    row_mask = None
    if where is not None:
        mask = arguments.as_array(where, "where")
        if mask.dtype != jnp.bool_:
            raise TypeError(f"`where` must be a boolean mask, got dtype {mask.dtype}.")
        if mask.shape != labels.shape:
            raise ValueError(
                f"`where` must have labels' shape {labels.shape} (one flag per token), "
                f"got {mask.shape}."
            )
        row_mask = mask
    dtype = arguments.compute_dtype(*(x for x in (hidden, weight, bias) if x is not None))
    cfg = _Config(chunk, tile, opts, cap, return_lse)
    return Arguments(hidden, weight, labels, bias, row_mask, cfg, n, dtype)
