"""Opt-in value checks: eager errors naming the culprits, and checkify errors inside jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxent as je


def test_check_probabilities_eager():
    je.check_probabilities(jnp.array([[0.5, 0.5], [0.2, 0.8]]))
    je.check_probabilities(jnp.array([[0.5, 0.2], [0.5, 0.8]]), axis=0)
    je.check_probabilities(jnp.array([0.5, 0.5, np.nan]), where=jnp.array([True, True, False]))
    je.check_probabilities(jnp.array([0.5, 0.5 + 1e-7]), atol=1e-6)
    with pytest.raises(ValueError, match=r"do not sum to 1.*1 offending entries.*\(1,\): "):
        je.check_probabilities(jnp.array([[0.5, 0.5], [0.2, 0.7]]))
    with pytest.raises(ValueError, match=r"negative or non-finite.*2 offending.*\(0, 1\): .*nan"):
        je.check_probabilities(jnp.array([[0.5, np.nan], [1.2, -0.2]]))
    with pytest.raises(ValueError, match=r"non-finite.*inf"):
        je.check_probabilities(jnp.array([np.inf, 0.0]))
    with pytest.raises(ValueError, match="do not sum"):
        je.check_probabilities(jnp.array([0.5, 0.5 + 1e-4]), atol=1e-5)
    with pytest.raises(ValueError, match="and 2 more"):
        je.check_probabilities(jnp.full((7, 2), 0.4))


def test_check_integer_labels_eager():
    je.check_integer_labels(jnp.array([0, 2, 1]), 3)
    je.check_integer_labels(jnp.array([0, 2, -100]), 3, ignore_index=-100)
    with pytest.raises(ValueError, match=r"\[0, 3\): 2 offending.*\(1,\): .*3.*\(2,\): .*-1"):
        je.check_integer_labels(jnp.array([0, 3, -1]), 3)
    with pytest.raises(ValueError, match="ignore_index=-100"):
        je.check_integer_labels(jnp.array([-100, 5]), 3, ignore_index=-100)
    with pytest.raises(TypeError, match="labels"):
        je.check_integer_labels(jnp.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="num_classes"):
        je.check_integer_labels(jnp.array([0]), 0)


def _checked(f):
    return jax.jit(checkify.checkify(f))


def test_check_probabilities_under_checkify_in_jit():
    def f(p):
        je.check_probabilities(p)
        return je.entropy(p)

    g = _checked(f)
    err, out = g(jnp.array([[0.5, 0.5], [0.25, 0.75]]))
    err.throw()  # no error
    np.testing.assert_allclose(out[0], np.log(2), rtol=1e-15)
    err, _ = g(jnp.array([[0.5, 0.5], [0.25, 0.7]]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"1 distributions .*flat index 1"):
        err.throw()
    err, _ = g(jnp.array([[0.5, 0.5], [-0.25, 1.25]]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"1 negative or non-finite.*index 2"):
        err.throw()
    # masked entries are not inspected under checkify either.
    h = _checked(lambda p: je.check_probabilities(p, where=jnp.array([True, True, False])))
    err, _ = h(jnp.array([0.5, 0.5, np.nan]))
    err.throw()


def test_check_integer_labels_under_checkify_in_jit():
    def f(z, labels):
        je.check_integer_labels(labels, z.shape[-1], ignore_index=-100)
        return je.softmax_cross_entropy_with_integer_labels(z, labels, ignore_index=-100)

    g = _checked(f)
    z = jnp.zeros((3, 4))
    err, out = g(z, jnp.array([0, -100, 3]))
    err.throw()
    np.testing.assert_allclose(out, [np.log(4), 0.0, np.log(4)], rtol=1e-15)
    err, out = g(z, jnp.array([0, 4, -1]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"2 entries outside \[0, 4\).*index 1.*4"):
        err.throw()
    # without the check, the loss itself reports the invalid labels as NaN, never wraps.
    assert np.isnan(out[1]) and np.isnan(out[2]) and np.isfinite(out[0])


def test_negative_atol_is_refused():
    with pytest.raises(ValueError, match="atol"):
        je.check_probabilities([[0.5, 0.5]], atol=-1)
