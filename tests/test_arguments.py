"""Bad static input raises at call time, eagerly and under jit, naming the argument and shapes."""

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
