"""Argument handling: bad static input raises at call time, eagerly and under jit, naming the
argument and shapes; integer labels, masks and tuple axes mean the same in every loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxent as je

Z = jnp.zeros((4, 3))
P = jnp.full((4, 3), 1 / 3)
LAB = jnp.array([0, 1, 2, 0])

CASES = [
    # labels whose shape differs: no silent broadcasting of (N, 1) against (N,) or (N, K).
    (
        lambda: je.softmax_cross_entropy(Z, jnp.zeros((4, 1))),
        ValueError,
        ["labels", "(4, 1)", "(4, 3)"],
    ),
    (lambda: je.softmax_cross_entropy(Z, jnp.zeros(3)), ValueError, ["labels", "(3,)", "(4, 3)"]),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB[:, None]),
        ValueError,
        ["labels", "(4, 1)", "(4,)"],
    ),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB, axis=0),
        ValueError,
        ["labels", "(3,)", "(4,)"],
    ),
    (
        lambda: je.sigmoid_binary_cross_entropy(Z, jnp.zeros((4, 1))),
        ValueError,
        ["labels", "(4, 1)"],
    ),
    (lambda: je.multilabel_sigmoid_cross_entropy(Z, jnp.zeros(3)), ValueError, ["labels", "(3,)"]),
    (lambda: je.cross_entropy(P, P[:, :2]), ValueError, ["q", "(4, 2)", "(4, 3)"]),
    (lambda: je.kl_divergence(P, P[None]), ValueError, ["q", "(1, 4, 3)"]),
    (lambda: je.binary_cross_entropy(P, P[:1]), ValueError, ["labels", "(1, 3)"]),
    (lambda: je.kl_divergence_from_logits(Z, Z[:, :1]), ValueError, ["q_logits", "(4, 1)"]),
    # float labels for the integer variant; integer logits.
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB * 1.0),
        TypeError,
        ["labels", "float"],
    ),
    (
        lambda: je.softmax_cross_entropy(LAB[:, None] * jnp.ones((1, 3), int), P),
        TypeError,
        ["logits", "int"],
    ),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(jnp.zeros((4, 3), int), LAB),
        TypeError,
        ["logits"],
    ),
    (
        lambda: je.sigmoid_binary_cross_entropy(jnp.zeros(3, int), jnp.zeros(3)),
        TypeError,
        ["logits"],
    ),
    (
        lambda: je.multilabel_sigmoid_cross_entropy(jnp.zeros(3, int), jnp.zeros(3)),
        TypeError,
        ["logits"],
    ),
    (lambda: je.entropy_from_logits(jnp.zeros(3, int)), TypeError, ["logits"]),
    (
        lambda: je.kl_divergence_from_logits(jnp.zeros(3, int), jnp.zeros(3)),
        TypeError,
        ["p_logits"],
    ),
    (
        lambda: je.kl_divergence_from_logits(jnp.zeros(3), jnp.zeros(3, int)),
        TypeError,
        ["q_logits"],
    ),
    (lambda: je.entropy(jnp.zeros(3, complex)), TypeError, ["p", "complex"]),
    # axis out of range, or repeated.
    (lambda: je.entropy(P, axis=2), ValueError, ["axis", "2", "2 dimensions"]),
    (lambda: je.cross_entropy(P, P, axis=-3), ValueError, ["axis", "-3"]),
    (lambda: je.kl_divergence(P, P, axis=(0, 2)), ValueError, ["axis"]),
    (lambda: je.softmax_cross_entropy(Z, P, axis=5), ValueError, ["axis", "5"]),
    (lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB, axis=2), ValueError, ["axis"]),
    (
        lambda: je.multilabel_sigmoid_cross_entropy(Z, P, axis=(1, -1)),
        ValueError,
        ["axis", "twice"],
    ),
    (lambda: je.entropy_from_logits(Z, axis=()), ValueError, ["axis"]),
    (lambda: je.kl_divergence_from_logits(Z, Z, axis=-3), ValueError, ["axis"]),
    # base <= 0 or == 1.
    *[
        (lambda b=b, f=f: f(b), ValueError, ["base", repr(b)])
        for b in (0, -2.0, 1, 1.0, float("nan"), float("inf"))
        for f in (
            lambda b: je.entropy(P, base=b),
            lambda b: je.self_information(P, base=b),
            lambda b: je.binary_entropy(P, base=b),
            lambda b: je.cross_entropy(P, P, base=b),
            lambda b: je.kl_divergence(P, P, base=b),
            lambda b: je.entropy_from_logits(Z, base=b),
            lambda b: je.kl_divergence_from_logits(Z, Z, base=b),
        )
    ],
    # label_smoothing outside [0, 1), negative z_loss.
    *[
        (lambda e=e, f=f: f(e), ValueError, ["label_smoothing", repr(e)])
        for e in (-0.1, 1.0, 1.5)
        for f in (
            lambda e: je.softmax_cross_entropy(Z, P, label_smoothing=e),
            lambda e: je.softmax_cross_entropy_with_integer_labels(Z, LAB, label_smoothing=e),
        )
    ],
    (lambda: je.softmax_cross_entropy(Z, P, z_loss=-1.0), ValueError, ["z_loss", "-1.0"]),
    # class_weights of the wrong length.
    (
        lambda: je.softmax_cross_entropy(Z, P, class_weights=jnp.ones(4)),
        ValueError,
        ["class_weights", "(3,)", "(4,)"],
    ),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(
            Z, LAB, class_weights=jnp.ones((3, 1))
        ),
        ValueError,
        ["class_weights", "(3,)", "(3, 1)"],
    ),
    # bad masks, pos_weight and ignore_index.
    (lambda: je.entropy(P, where=jnp.ones((4, 3))), TypeError, ["where", "bool"]),
    (
        lambda: je.softmax_cross_entropy(Z, P, where=jnp.ones((2, 3), bool)),
        ValueError,
        ["where", "(2, 3)"],
    ),
    (
        lambda: je.entropy_from_logits(Z, where=jnp.ones(2, bool)),
        ValueError,
        ["where", "(2,)", "(4,)"],
    ),
    (
        lambda: je.sigmoid_binary_cross_entropy(Z, P, pos_weight=jnp.ones(4)),
        ValueError,
        ["pos_weight", "(4,)", "(4, 3)"],
    ),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB, ignore_index=1.5),
        TypeError,
        ["ignore_index"],
    ),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_bad_static_input_raises_with_names(i):
    call, error, words = CASES[i]
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("i", [0, 2, 10, 19, 33])
def test_raises_under_jit_too(i):
    """The checks run on shapes at trace time, so jit raises the same error."""
    call, error, words = CASES[i]
    with pytest.raises(error, match=words[0]):
        jax.jit(call)()


def test_traced_static_options_are_rejected():
    with pytest.raises(TypeError, match="label_smoothing"):
        jax.jit(lambda e: je.softmax_cross_entropy(Z, P, label_smoothing=e))(0.1)
    with pytest.raises(TypeError, match="base"):
        jax.jit(lambda b: je.entropy(P, base=b))(2.0)


def test_valid_edge_options_are_accepted():
    np.testing.assert_allclose(je.entropy(P, base=np.e), je.entropy(P), rtol=1e-15)
    np.testing.assert_allclose(je.entropy(P, base=0.5), -je.entropy(P, base=2), rtol=1e-15)
    assert je.softmax_cross_entropy(Z, P, label_smoothing=0.0, z_loss=0.0).shape == (4,)
    # class_weights may also come in the class shape of a tuple axis.
    z3 = jnp.zeros((2, 3, 4))
    out = je.softmax_cross_entropy(
        z3, jnp.ones((2, 3, 4)) / 12, axis=(1, 2), class_weights=jnp.ones((3, 4))
    )
    np.testing.assert_allclose(out, np.log(12), rtol=1e-15)


# Static options: the type is checked, not coerced.

BAD_OPTIONS = [
    (lambda: je.softmax_cross_entropy(Z, P, axis=None), TypeError, "axis"),
    (lambda: je.entropy(P, axis=None), TypeError, "axis"),
    (lambda: je.entropy(P, axis=True), TypeError, "axis"),
    (lambda: je.softmax_cross_entropy(Z, P, z_loss=None), TypeError, "z_loss"),
    (lambda: je.softmax_cross_entropy(Z, P, label_smoothing=None), TypeError, "label_smoothing"),
    (lambda: je.softmax_cross_entropy(Z, P, label_smoothing="0.1"), TypeError, "label_smoothing"),
    (lambda: je.entropy(P, base="2"), TypeError, "base"),
    (lambda: je.entropy(P, base=True), TypeError, "base"),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB, ignore_index=True),
        TypeError,
        "ignore_index",
    ),
    (
        lambda: je.softmax_cross_entropy_with_integer_labels(Z, LAB, ignore_index="-100"),
        TypeError,
        "ignore_index",
    ),
    (
        lambda: je.linear_softmax_cross_entropy(Z, Z.T, LAB[:4], return_lse="yes"),
        TypeError,
        "return_lse",
    ),
    (lambda: je.check_integer_labels(LAB, 3, ignore_index=True), TypeError, "ignore_index"),
    (lambda: je.entropy("abc"), TypeError, "p"),
]


@pytest.mark.parametrize("i", range(len(BAD_OPTIONS)))
def test_bad_static_option_types_raise_naming_the_argument(i):
    call, error, name = BAD_OPTIONS[i]
    with pytest.raises(error, match=name):
        call()


def test_traced_axis_and_flag_are_rejected_naming_them():
    with pytest.raises(TypeError, match="axis"):
        jax.jit(lambda a: je.entropy(P, axis=a))(1)
    with pytest.raises(TypeError, match="axis"):
        jax.jit(lambda a: je.softmax_cross_entropy_with_integer_labels(Z, LAB, axis=a))(-1)
    with pytest.raises(TypeError, match="return_lse"):
        jax.jit(lambda r: je.linear_softmax_cross_entropy(Z, Z.T, LAB, return_lse=r))(True)


def test_numpy_integers_are_accepted_as_indices_and_axes():
    z = jnp.array([[0.3, 0.1, -0.2], [1.0, 2.0, 0.5]])
    labels = jnp.array([1, -100])
    want = je.softmax_cross_entropy_with_integer_labels(z, labels, ignore_index=-100)
    got = je.softmax_cross_entropy_with_integer_labels(
        z, labels, ignore_index=np.int64(-100), axis=np.int32(-1)
    )
    np.testing.assert_array_equal(got, want)
    je.check_integer_labels(labels, np.int64(3), ignore_index=np.int16(-100))


# Integer labels of every dtype: compared in bounds that fit the dtype, never wrapped.

NARROW = [jnp.uint8, jnp.int8, jnp.uint16, jnp.int16, jnp.uint32]


def _byte_problem(num_classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(6, num_classes)))
    top = min(num_classes, int(jnp.iinfo(dtype).max) + 1)
    y = rng.integers(0, top, 6)
    y[0] = top - 1  # the largest label the dtype holds
    return z, y


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize(
    "kw",
    [{}, {"label_smoothing": 0.1}, {"where": np.array([1, 1, 0, 1, 1, 1], bool)}, {"z_loss": 0.1}],
)
def test_narrow_label_dtypes_equal_int32_labels(dtype, kw):
    """A byte-level model: K = 256 with uint8 labels; every valid label is valid."""
    z, y = _byte_problem(256, dtype)
    want = je.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(y, jnp.int32), **kw)
    got = je.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(y, dtype), **kw)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)
    g_want = jax.grad(
        lambda x: je.softmax_cross_entropy_with_integer_labels(x, jnp.asarray(y), **kw).sum()
    )(z)
    g_got = jax.grad(
        lambda x: je.softmax_cross_entropy_with_integer_labels(x, jnp.asarray(y, dtype), **kw).sum()
    )(z)
    np.testing.assert_array_equal(g_got, g_want)


def test_narrow_labels_with_ignore_index_outside_their_range():
    """``ignore_index=-100`` matches no uint8 label: 156 (= -100 mod 256) stays a class."""
    z, _ = _byte_problem(256, jnp.uint8)
    y = jnp.array([156, 3, 255, 0, 100, 156], jnp.uint8)
    got = je.softmax_cross_entropy_with_integer_labels(z, y, ignore_index=-100)
    want = je.softmax_cross_entropy_with_integer_labels(z, y.astype(jnp.int32))
    np.testing.assert_array_equal(got, want)
    assert (got > 0).all()
    # An ignore_index that does fit the dtype still skips.
    got = je.softmax_cross_entropy_with_integer_labels(z, y, ignore_index=156)
    assert got[0] == 0 and got[5] == 0 and (got[1:5] > 0).all()


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int16])
def test_narrow_signed_labels_out_of_range_give_nan(dtype):
    z = jnp.zeros((3, 10))
    y = jnp.array([-1, 10, 4], dtype)
    got = je.softmax_cross_entropy_with_integer_labels(z, y)
    np.testing.assert_array_equal(np.isnan(got), [True, True, False])
    got = je.softmax_cross_entropy_with_integer_labels(z, y, label_smoothing=0.1)
    np.testing.assert_array_equal(np.isnan(got), [True, True, False])


@pytest.mark.parametrize("dtype", NARROW)
def test_check_integer_labels_accepts_every_valid_narrow_label(dtype):
    _, y = _byte_problem(256, dtype)
    je.check_integer_labels(jnp.asarray(y, dtype), 256)
    je.check_integer_labels(jnp.asarray(y, dtype), 256, ignore_index=-100)
    with pytest.raises(ValueError, match="labels"):
        je.check_integer_labels(jnp.asarray([1, 7], dtype), 5)


def test_streaming_loss_with_uint8_labels():
    rng = np.random.default_rng(3)
    h = jnp.asarray(rng.normal(size=(5, 8)))
    w = jnp.asarray(rng.normal(size=(8, 256)) / 3)
    y = jnp.array([255, 0, 156, 17, 200], jnp.uint8)
    got = je.linear_softmax_cross_entropy(h, w, y, chunk_size=64, ignore_index=-100)
    want = je.softmax_cross_entropy_with_integer_labels(h @ w, y.astype(jnp.int32))
    np.testing.assert_allclose(got, want, rtol=1e-12)


# Masks: an excluded example gives 0 with gradient 0, whatever its label holds.

EXCLUDED_LABELS = [-1, 3, -100, 2**31 - 1]


@pytest.mark.parametrize("bad", EXCLUDED_LABELS)
@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1, "z_loss": 0.01}, {"ignore_index": -7}])
def test_row_excluded_by_where_gives_zero_whatever_its_label(bad, kw):
    # (4 rows of 3 classes: a (3,) mask on (3, 3) logits would be ambiguous)
    z = jnp.array([[0.3, 0.1, -0.2], [1.0, jnp.nan, 0.5], [0.0, 0.0, 1.0], [0.2, -0.1, 0.4]])
    y = jnp.array([1, bad, 2, 0])
    where = jnp.array([True, False, True, True])

    def f(x):
        return je.softmax_cross_entropy_with_integer_labels(x, y, where=where, **kw)

    loss = f(z)
    assert loss[1] == 0 and np.isfinite(loss).all()
    grad = jax.grad(lambda x: f(x).sum())(z)
    np.testing.assert_array_equal(grad[1], 0.0)
    kept = np.asarray(where)
    sliced = je.softmax_cross_entropy_with_integer_labels(z[kept], y[kept], **kw)
    np.testing.assert_allclose(loss[kept], sliced, rtol=1e-15)


def test_row_with_every_class_masked_gives_zero_whatever_its_label():
    z = jnp.array([[0.3, 0.1, -0.2], [1.0, 2.0, 0.5]])
    where = jnp.array([[True, False, True], [False, False, False]])
    for kw in ({}, {"label_smoothing": 0.2}):
        loss = je.softmax_cross_entropy_with_integer_labels(
            z, jnp.array([0, -1]), where=where, **kw
        )
        assert loss[1] == 0 and np.isfinite(loss[0])


def test_streaming_loss_row_excluded_by_where_gives_zero_whatever_its_label():
    rng = np.random.default_rng(4)
    h = jnp.asarray(rng.normal(size=(4, 6)))
    w = jnp.asarray(rng.normal(size=(6, 10)))
    y = jnp.array([1, -1, 10, 9])
    where = jnp.array([True, False, False, True])

    def f(h, w):
        return je.linear_softmax_cross_entropy(h, w, y, where=where, chunk_size=4).sum()

    value, (dh, dw) = jax.value_and_grad(f, argnums=(0, 1))(h, w)
    assert np.isfinite(value) and np.isfinite(dh).all() and np.isfinite(dw).all()
    np.testing.assert_array_equal(dh[1:3], 0.0)


# Masks of lower rank: the per-example shape masks examples; others broadcast.


def test_per_class_mask_of_shape_k_broadcasts():
    z = jnp.array([[0.3, 0.1, -0.2, 2.0], [1.0, 2.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]])
    keep = jnp.array([True, False, True, True])
    full = jnp.broadcast_to(keep, z.shape)
    y = jnp.array([0, 2, 3])
    for fn, args in [
        (je.softmax_cross_entropy_with_integer_labels, (z, y)),
        (je.softmax_cross_entropy, (z, jax.nn.one_hot(y, 4))),
        (je.entropy_from_logits, (z,)),
        (je.multilabel_sigmoid_cross_entropy, (z, jnp.full(z.shape, 0.5))),
        (je.entropy, (jax.nn.softmax(z),)),
    ]:
        np.testing.assert_array_equal(fn(*args, where=keep), fn(*args, where=full))


def test_mask_both_per_example_and_per_class_is_ambiguous():
    # (K,) on (K, K) logits: rows or classes? Neither is guessed; each explicit form works.
    z = jnp.array([[0.3, 0.1, -0.2], [1.0, 2.0, 0.5], [0.1, 0.2, 0.3]])
    keep = jnp.array([True, False, True])
    y = jnp.array([0, 2, 1])
    for fn, args in [
        (je.softmax_cross_entropy_with_integer_labels, (z, y)),
        (je.entropy_from_logits, (z,)),
        (je.kl_divergence_from_logits, (z, z[::-1])),
        (je.entropy, (jax.nn.softmax(z),)),
    ]:
        with pytest.raises(ValueError, match=r"`where` of shape \(3,\) is ambiguous") as err:
            fn(*args, where=keep)
        assert "where[..., None]" in str(err.value) and "(1, 3)" in str(err.value)
        rows = fn(*args, where=keep[:, None])
        np.testing.assert_array_equal(rows[1], 0)
        # Masked and unmasked rows may take different passes (equal up to rounding).
        np.testing.assert_allclose(rows[::2], fn(*args)[::2], rtol=1e-14)
        classes = fn(*args, where=keep[None])
        np.testing.assert_array_equal(classes, fn(*args, where=jnp.broadcast_to(keep, z.shape)))
    # Not ambiguous: the class axis first (both readings agree), or N != K.
    np.testing.assert_array_equal(
        je.entropy_from_logits(z, axis=0, where=keep),
        je.entropy_from_logits(z.T, where=keep[:, None]),
    )
    np.testing.assert_array_equal(je.entropy_from_logits(z[:2], where=keep[:2])[1], 0)


def test_ambiguous_mask_message_names_the_fix_for_every_reduced_axis():
    # Tables [N, X, Y] with N == X == Y: the hint inserts both table axes, and following it
    # masks whole tables; a class axis that is not last is inserted where it is.
    joint = jnp.full((3, 3, 3), 1 / 9)
    keep = jnp.array([True, False, True])
    for fn in (je.joint_entropy, je.mutual_information, je.normalized_mutual_information):
        with pytest.raises(ValueError, match=r"is ambiguous") as err:
            fn(joint, where=keep)
        assert "where[..., None, None]" in str(err.value), err.value
        got = fn(joint, where=keep[:, None, None])
        np.testing.assert_array_equal(got[::2], fn(joint)[::2])
        np.testing.assert_array_equal(got[1], 0)
    z = jnp.arange(27.0).reshape(3, 3, 3)
    with pytest.raises(ValueError, match=r"jnp.expand_dims\(where, \(1,\)\)"):
        je.entropy_from_logits(z, axis=1, where=jnp.ones((3, 3), bool))


# Tuple axes flatten in the order given, as optax does.


def test_tuple_axis_flattens_in_the_order_given():
    rng = np.random.default_rng(5)
    z = jnp.asarray(rng.normal(size=(2, 3, 4)))
    y = jnp.array([5, 11])
    for axis in [(2, 1), (1, 2), (-1, -2)]:
        order = tuple(a % 3 for a in axis)
        flat = jnp.moveaxis(z, order, (1, 2)).reshape(2, 12)
        got = je.softmax_cross_entropy_with_integer_labels(z, y, axis=axis)
        np.testing.assert_allclose(
            got, je.softmax_cross_entropy_with_integer_labels(flat, y), rtol=1e-15
        )
        weights = jnp.arange(1.0, 13.0)
        got = je.softmax_cross_entropy_with_integer_labels(
            z, y, axis=axis, class_weights=weights, label_smoothing=0.1
        )
        want = je.softmax_cross_entropy_with_integer_labels(
            flat, y, class_weights=weights, label_smoothing=0.1
        )
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_tuple_axis_matches_optax():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.normal(size=(2, 3, 4)))
    y = jnp.array([5, 11])
    got = je.softmax_cross_entropy_with_integer_labels(z, y, axis=(2, 1))
    want = optax.softmax_cross_entropy_with_integer_labels(z, y, axis=(2, 1))
    np.testing.assert_allclose(got, want, rtol=1e-12)


# Zero classes: a softmax has none to normalise over; a sum of independent terms is 0.


@pytest.mark.parametrize(
    "call",
    [
        lambda z: je.softmax_cross_entropy(z, z),
        lambda z: je.softmax_cross_entropy_with_integer_labels(z, jnp.zeros(3, int)),
        lambda z: je.entropy_from_logits(z),
        lambda z: je.kl_divergence_from_logits(z, z),
    ],
)
def test_zero_classes_raise_naming_the_logits(call):
    with pytest.raises(ValueError, match=r"logits.*no classes"):
        call(jnp.zeros((3, 0)))
    with pytest.raises(ValueError, match="no classes"):
        jax.jit(call)(jnp.zeros((3, 0)))


def test_zero_classes_give_an_empty_sum_for_independent_terms():
    z = jnp.zeros((3, 0))
    np.testing.assert_array_equal(je.multilabel_sigmoid_cross_entropy(z, z), np.zeros(3))
    np.testing.assert_array_equal(je.entropy(z), np.zeros(3))
    np.testing.assert_array_equal(je.kl_divergence(z, z), np.zeros(3))
    with pytest.raises(ValueError, match="V=0"):
        je.linear_softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((4, 0)), jnp.zeros(3, int))


# Weights given as Python numbers do not widen the computation.


def test_python_float_pos_weight_keeps_float32():
    z = jnp.zeros(3, jnp.float32)
    assert je.sigmoid_binary_cross_entropy(z, z, pos_weight=2.0).dtype == jnp.float32
    assert je.multilabel_sigmoid_cross_entropy(z, z, pos_weight=2.0).dtype == jnp.float32
    f64 = jnp.ones(3, jnp.float64)
    assert je.sigmoid_binary_cross_entropy(z, z, pos_weight=f64).dtype == jnp.float64
