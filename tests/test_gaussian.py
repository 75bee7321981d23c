"""Gaussian closed forms (``_src/gaussian.py``): differential entropy and KL divergence,
with full covariances and with diagonal ones given by log-variances."""

import math
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from absl.testing import parameterized
from helpers import check_traced_once, close, f64, jfwd, jgrad, out_dtype
from jax.test_util import check_grads

import jaxent as je


def random_cov(rng, batch, d):
    """Well-conditioned SPD matrices, shape (*batch, d, d)."""
    a = rng.normal(size=(*batch, d, d))
    return a @ np.swapaxes(a, -1, -2) / d + 0.5 * np.eye(d)


def random_problem(rng, batch, d):
    """Two Gaussians with full covariances, and two with diagonal ones."""
    return {
        "mean_p": rng.normal(size=(*batch, d)),
        "cov_p": random_cov(rng, batch, d),
        "mean_q": rng.normal(size=(*batch, d)),
        "cov_q": random_cov(rng, batch, d),
        "log_var_p": rng.normal(size=(*batch, d)),
        "log_var_q": rng.normal(size=(*batch, d)),
    }


def _all(x, base):
    return {
        "entropy": je.gaussian_entropy(x["cov_p"], base=base),
        "entropy_diag": je.gaussian_entropy_diag(x["log_var_p"], base=base),
        "kl": je.gaussian_kl(x["mean_p"], x["cov_p"], x["mean_q"], x["cov_q"], base=base),
        "kl_diag": je.gaussian_kl_diag(
            x["mean_p"], x["log_var_p"], x["mean_q"], x["log_var_q"], base=base
        ),
    }


def _oracles(x, base):
    x = {k: f64(v) for k, v in x.items()}
    return {
        "entropy": ref.gaussian_entropy(x["cov_p"], base),
        "entropy_diag": ref.gaussian_entropy(
            np.eye(x["log_var_p"].shape[-1]) * np.exp(x["log_var_p"])[..., None], base
        ),
        "kl": ref.gaussian_kl(x["mean_p"], x["cov_p"], x["mean_q"], x["cov_q"], base),
        "kl_diag": ref.gaussian_kl_diag(
            x["mean_p"], x["log_var_p"], x["mean_q"], x["log_var_q"], base
        ),
    }


TABLE = [
    ((), 1, jnp.float64),
    ((3,), 3, jnp.float64),
    ((2, 2), 5, jnp.float64),
    ((4,), 2, jnp.float32),
    ((2,), 4, jnp.bfloat16),
    ((2,), 3, jnp.float16),
]


@pytest.mark.parametrize("batch,d,dtype", TABLE)
def test_oracle_table(batch, d, dtype):
    rng = np.random.default_rng(0)
    x = {k: jnp.asarray(v, dtype) for k, v in random_problem(rng, batch, d).items()}
    run = jax.jit(lambda x: {i: _all(x, base) for i, base in enumerate((None, 2))})
    got = run(x)
    for i, base in enumerate((None, 2)):
        want = _oracles(x, base)
        for name, value in got[i].items():
            # the computation runs in float32 below float64: a few ulps of the O(10) terms.
            close(value, want[name], dtype, atol=2e-5)


def test_diagonal_forms_equal_full_forms():
    rng = np.random.default_rng(1)
    x = random_problem(rng, (3,), 4)
    cov_p = jnp.exp(x["log_var_p"])[..., None] * jnp.eye(4)
    cov_q = jnp.exp(x["log_var_q"])[..., None] * jnp.eye(4)
    np.testing.assert_allclose(
        je.gaussian_entropy_diag(x["log_var_p"]), je.gaussian_entropy(cov_p), rtol=1e-14
    )
    np.testing.assert_allclose(
        je.gaussian_kl_diag(x["mean_p"], x["log_var_p"], x["mean_q"], x["log_var_q"]),
        je.gaussian_kl(x["mean_p"], cov_p, x["mean_q"], cov_q),
        rtol=1e-13,
    )


def test_worked_numbers():
    """h(N(0, I_D)) = D/2 log(2 pi e); the VAE term against N(0, I) in its textbook form."""
    for d in (1, 5):
        np.testing.assert_allclose(
            je.gaussian_entropy(jnp.eye(d)), d / 2 * math.log(2 * math.pi * math.e), rtol=1e-15
        )
    mu, log_var = jnp.array([0.3, -1.2, 2.0]), jnp.array([0.5, -2.0, 0.1])
    want = 0.5 * np.sum(np.exp(log_var) + mu**2 - 1 - log_var)
    zeros = jnp.zeros(3)
    np.testing.assert_allclose(je.gaussian_kl_diag(mu, log_var, zeros, zeros), want, rtol=1e-14)
    # base 2: everything divided by ln 2.
    cov = jnp.asarray(random_cov(np.random.default_rng(2), (), 3))
    np.testing.assert_allclose(
        je.gaussian_entropy(cov, base=2), je.gaussian_entropy(cov) / math.log(2), rtol=1e-15
    )


# Near-singular covariances, against mpmath on the very same (rounded) matrices.


@pytest.mark.parametrize(
    "dtype,cond,rtol",
    [
        # measured: 1e-13, 6e-8, 4e-6 and 6e-4 for the KL divergence (the entropy is
        # more accurate); the bound is of order cond * eps.
        (jnp.float64, 1e4, 1e-12),
        (jnp.float64, 1e10, 1e-6),
        (jnp.float32, 1e3, 3e-5),
        (jnp.float32, 1e5, 3e-3),
    ],
)
def test_near_singular_against_mpmath(dtype, cond, rtol):
    rng = np.random.default_rng(3)
    d = 6
    cov_p = jnp.asarray(ref.ill_conditioned_covariance(rng, d, cond), dtype)
    cov_q = jnp.asarray(ref.ill_conditioned_covariance(rng, d, cond), dtype)
    mean_p, mean_q = (jnp.asarray(rng.normal(size=d), dtype) for _ in range(2))
    # the matrices as rounded are still positive definite.
    assert np.all(np.linalg.eigvalsh(f64(cov_p)) > 0)
    h = je.gaussian_entropy(cov_p)
    np.testing.assert_allclose(h, ref.gaussian_entropy_mp(f64(cov_p)), rtol=rtol)
    kl = je.gaussian_kl(mean_p, cov_p, mean_q, cov_q)
    want = ref.gaussian_kl_mp(f64(mean_p), f64(cov_p), f64(mean_q), f64(cov_q))
    np.testing.assert_allclose(kl, want, rtol=rtol)
    # the gradient of the entropy is Sigma^-1 / 2: finite, symmetric.
    g = jgrad(je.gaussian_entropy)(cov_p)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, g.T, rtol=1e-6 if dtype == jnp.float32 else 1e-9)


def test_kl_near_equality_has_no_cancellation():
    """q a 1e-9 perturbation of p: the divergence, ~1e-18, keeps 5 digits in float64, where
    the textbook sum of O(1) terms (the float64 oracle's formula) keeps none."""
    rng = np.random.default_rng(4)
    d = 5
    cov_p = random_cov(rng, (), d)
    cov_q = cov_p + 1e-9 * random_cov(rng, (), d)
    mean_p = rng.normal(size=d)
    mean_q = mean_p + 1e-9 * rng.normal(size=d)
    want = ref.gaussian_kl_mp(mean_p, cov_p, mean_q, cov_q)
    assert 1e-19 < want < 1e-16
    np.testing.assert_allclose(je.gaussian_kl(mean_p, cov_p, mean_q, cov_q), want, rtol=1e-5)
    textbook = ref.gaussian_kl(mean_p, cov_p, mean_q, cov_q)
    assert abs(textbook - want) > 0.5 * want
    lv_p = rng.normal(size=d)
    lv_q = lv_p + 1e-9 * rng.normal(size=d)
    got = je.gaussian_kl_diag(mean_p, lv_p, mean_q, lv_q)
    want = ref.gaussian_kl_mp(mean_p, np.diag(np.exp(lv_p)), mean_q, np.diag(np.exp(lv_q)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_kl_is_zero_at_equality_and_never_negative():
    """Equal arguments: 0, up to the triangular solve's rounding of L^-1 L (a few eps^2)."""
    rng = np.random.default_rng(5)

    @jax.jit
    def run(x):
        m, c, lv = x["mean_p"], x["cov_p"], x["log_var_p"]
        return (
            je.gaussian_kl(m, c, m, c),
            je.gaussian_kl_diag(m, lv, m, lv),
            je.gaussian_kl(m, c, m, c * (1 + 1e-6)),
            je.gaussian_kl_diag(m, lv, m, lv + 1e-6),
        )

    for dtype in (jnp.float32, jnp.float64):
        x = {k: jnp.asarray(v, dtype) for k, v in random_problem(rng, (20,), 4).items()}
        kl, kl_diag, near, near_diag = run(x)
        assert np.all((kl >= 0) & (kl <= 16 * jnp.finfo(dtype).eps ** 2))
        assert np.all(kl_diag == 0)
        assert np.all(near >= 0) and np.all(near_diag >= 0)


# Monte Carlo cross-checks (loose tolerances).


def test_monte_carlo_cross_checks():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(6)
    n, d = 20000, 3
    log_var = np.array([0.4, -1.0, 1.5])
    samples = rng.normal(size=(n, d)) * np.exp(log_var / 2)
    estimate = np.sum(stats.differential_entropy(samples, axis=0))
    np.testing.assert_allclose(je.gaussian_entropy_diag(log_var), estimate, atol=0.03)
    x = random_problem(rng, (), d)
    p = stats.multivariate_normal(x["mean_p"], x["cov_p"])
    q = stats.multivariate_normal(x["mean_q"], x["cov_q"])
    s = p.rvs(size=n, random_state=rng)
    estimate = np.mean(p.logpdf(s) - q.logpdf(s))
    kl = je.gaussian_kl(x["mean_p"], x["cov_p"], x["mean_q"], x["cov_q"])
    np.testing.assert_allclose(kl, estimate, rtol=0.05)


# Eager, jit and vmap agree; static options never retrace.

FNS = {
    "gaussian_entropy": (je.gaussian_entropy, ("cov_p",)),
    "gaussian_entropy_diag": (je.gaussian_entropy_diag, ("log_var_p",)),
    "gaussian_kl": (je.gaussian_kl, ("mean_p", "cov_p", "mean_q", "cov_q")),
    "gaussian_kl_diag": (je.gaussian_kl_diag, ("mean_p", "log_var_p", "mean_q", "log_var_q")),
}
VARIANTS = [(n, n, {"base": 2}) for n in FNS]


def _args(name, seed, batch=(3,)):
    x = random_problem(np.random.default_rng(seed), batch, 3)
    return tuple(jnp.asarray(x[k]) for k in FNS[name][1])


class PublicFunctionTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*VARIANTS)
    def test_matches_eager(self, name, static):
        f = FNS[name][0]
        args = _args(name, 7)
        eager = f(*args, **static)
        g = partial(self.variant(f, static_argnames=tuple(static)), **static)
        np.testing.assert_allclose(g(*args), eager, rtol=1e-14, atol=0)
        np.testing.assert_allclose(jax.vmap(g)(*args), eager, rtol=1e-14, atol=0)
        moved = tuple(jnp.moveaxis(a, 0, -1) for a in args)
        np.testing.assert_allclose(jax.vmap(g, in_axes=-1)(*moved), eager, rtol=1e-14, atol=0)

    @parameterized.named_parameters(*[(n, n) for n in FNS])
    def test_static_options_do_not_retrace(self, name):
        calls = [(_args(name, s), {}) for s in range(3)]
        check_traced_once(FNS[name][0], {"base": 2}, calls)


# Gradients against closed forms written out here.


def test_gradients_closed_form():
    rng = np.random.default_rng(8)
    base = 2
    ln_b = math.log(base)
    x = random_problem(rng, (2,), 3)
    mp, cp, mq, cq = x["mean_p"], x["cov_p"], x["mean_q"], x["cov_q"]
    inv_p, inv_q = np.linalg.inv(cp), np.linalg.inv(cq)
    delta = mp - mq
    outer = delta[..., :, None] * delta[..., None, :]
    for transform in (jgrad, jfwd):
        g = transform(lambda c: je.gaussian_entropy(c, base=base).sum())(cp)
        np.testing.assert_allclose(g, inv_p / 2 / ln_b, rtol=1e-12)
        g = transform(lambda *a: je.gaussian_kl(*a, base=base).sum(), (0, 1, 2, 3))(mp, cp, mq, cq)
        want = (
            np.einsum("...ij,...j->...i", inv_q, delta),
            (inv_q - inv_p) / 2,
            -np.einsum("...ij,...j->...i", inv_q, delta),
            (inv_q - inv_q @ (cp + outer) @ inv_q) / 2,
        )
        for got, w in zip(g, want, strict=True):
            np.testing.assert_allclose(got, w / ln_b, rtol=1e-11, atol=1e-14)
    lvp, lvq = x["log_var_p"], x["log_var_q"]
    dvar = np.exp(lvp - lvq)
    want = (
        delta * np.exp(-lvq),
        (dvar - 1) / 2,
        -delta * np.exp(-lvq),
        (1 - dvar - delta**2 * np.exp(-lvq)) / 2,
    )
    for transform in (jgrad, jfwd):
        g = transform(lambda c: je.gaussian_entropy_diag(c, base=base).sum())(lvp)
        np.testing.assert_allclose(g, np.full_like(lvp, 0.5 / ln_b), rtol=1e-15)
        g = transform(lambda *a: je.gaussian_kl_diag(*a, base=base).sum(), (0, 1, 2, 3))(
            mp, lvp, mq, lvq
        )
        for got, w in zip(g, want, strict=True):
            np.testing.assert_allclose(got, w / ln_b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(FNS))
def test_check_grads(name):
    # second order for the diagonal forms; first for the full ones (whose second order,
    # through the Cholesky factorisation, costs most of this file's time).
    check_grads(
        jax.jit(FNS[name][0]),
        _args(name, 9, batch=(2,)),
        order=2 if name.endswith("diag") else 1,
        modes=("fwd", "rev"),
        eps=1e-4,
        atol=1e-5,
        rtol=1e-5,
    )


# Boundary inputs.


def test_not_positive_definite_gives_nan():
    bad = jnp.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    good = jnp.eye(2)
    m = jnp.zeros(2)
    assert np.isnan(je.gaussian_entropy(bad))
    assert np.isnan(je.gaussian_kl(m, bad, m, good))
    assert np.isnan(je.gaussian_kl(m, good, m, bad))
    assert np.isnan(je.gaussian_entropy(-jnp.eye(2)))
    # only the batch element that is not positive definite is NaN.
    h = je.gaussian_entropy(jnp.stack([good, bad]))
    assert np.isfinite(h[0]) and np.isnan(h[1])
    # a singular matrix: -inf or NaN, never a finite number.
    assert not np.isfinite(je.gaussian_entropy(jnp.array([[1.0, 1.0], [1.0, 1.0]])))


def test_zero_dimensions():
    assert je.gaussian_entropy(jnp.zeros((0, 0))) == 0
    assert je.gaussian_entropy_diag(jnp.zeros((0,))) == 0
    assert je.gaussian_kl(jnp.zeros(0), jnp.zeros((0, 0)), jnp.zeros(0), jnp.zeros((0, 0))) == 0
    assert je.gaussian_kl_diag(*(jnp.zeros(0),) * 4) == 0


def test_infinite_and_extreme_log_variances():
    z = jnp.zeros(2)
    assert je.gaussian_entropy_diag(jnp.array([0.0, -jnp.inf])) == -np.inf
    assert je.gaussian_entropy_diag(jnp.array([0.0, jnp.inf])) == np.inf
    assert np.isnan(je.gaussian_entropy_diag(jnp.array([0.0, jnp.nan])))
    point = jnp.array([0.0, -jnp.inf])
    assert je.gaussian_kl_diag(z, point, z, z) == np.inf  # p a point mass, q not
    assert je.gaussian_kl_diag(z, z, z, point) == np.inf  # q a point mass, p not
    assert np.isnan(je.gaussian_kl_diag(z, point, z, point))
    # equal means: no Mahalanobis term, whatever q's variance (no 0 * inf).
    lv = jnp.array([0.0, -800.0])
    np.testing.assert_allclose(je.gaussian_kl_diag(z, lv, z, lv), 0.0)
    # log-variances of +-40 in float32: finite values and gradients.
    lv = jnp.array([40.0, -40.0], jnp.float32)
    m = jnp.array([1.0, -1.0], jnp.float32)
    zf = jnp.zeros(2, jnp.float32)
    for args in ((m, lv, zf, zf), (m, zf, zf, lv)):
        v = je.gaussian_kl_diag(*args)
        g = jgrad(lambda *a: je.gaussian_kl_diag(*a), (0, 1, 2, 3))(*args)
        assert np.isfinite(v) and all(np.all(np.isfinite(x)) for x in g)
        want = ref.gaussian_kl_diag(*(f64(a) for a in args))
        np.testing.assert_allclose(v, want, rtol=1e-6)


def test_infinite_mean_gives_inf():
    """An infinite mean in p, q's finite: the Mahalanobis term, and the divergence, are +inf
    in both forms (a NaN in the other mean still gives NaN)."""
    z, eye = jnp.zeros((3, 2)), jnp.broadcast_to(jnp.eye(2), (3, 2, 2))
    mean_p = jnp.array([[jnp.inf, 0.0], [0.0, -jnp.inf], [jnp.inf, jnp.nan]])
    cov_p = eye.at[1].set(jnp.array([[2.0, 1.0], [1.0, 2.0]]))
    # and the derivative in the infinite coordinate: infinite, with the sign of the slope.
    grad = jax.grad(je.gaussian_kl, (0, 2))
    full, diag, g = jax.jit(
        lambda m, c: (
            je.gaussian_kl(m, c, z, eye),
            je.gaussian_kl_diag(m, z, z, z),
            grad(m[0], c[0], z[0], eye[0]),
        )
    )(mean_p, cov_p)
    np.testing.assert_array_equal(full, [np.inf, np.inf, np.nan])
    np.testing.assert_array_equal(diag, [np.inf, np.inf, np.nan])
    np.testing.assert_array_equal(g, [[np.inf, 0.0], [-np.inf, 0.0]])


def test_point_mass_gradients_are_infinite_not_nan():
    """q a point mass in one coordinate (log-variance -inf), p not: the value is +inf, and
    the derivatives in the log-variances, (e^delta - 1)/2 and its negative, are +inf and
    -inf there (not NaN); p a point mass: finite, -1/2 and +1/2."""
    z = jnp.zeros(2)
    point = jnp.array([0.0, -jnp.inf])
    grad = jax.jit(jax.grad(je.gaussian_kl_diag, (1, 3)))
    g_p, g_q = grad(z, z, z, point)
    np.testing.assert_array_equal(g_p, [0.0, np.inf])
    np.testing.assert_array_equal(g_q, [0.0, -np.inf])
    g_p, g_q = grad(z, point, z, z)
    np.testing.assert_array_equal(g_p, [0.0, -0.5])
    np.testing.assert_array_equal(g_q, [0.0, 0.5])


# Dtype contract and argument checks.


# float32 and float64: the oracle table.
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_dtype_contract(dtype):
    x = {
        k: jnp.asarray(v, dtype)
        for k, v in random_problem(np.random.default_rng(10), (2,), 3).items()
    }
    values = jax.jit(partial(_all, base=None))(x)
    want = _all({k: v.astype(jnp.float64) for k, v in x.items()}, None)
    for name, v in values.items():
        assert v.dtype == out_dtype(dtype), name
        np.testing.assert_allclose(v, want[name], rtol=1e-5)
    grads = jgrad(lambda x: sum(v.sum() for v in _all(x, None).values()))(x)
    assert all(g.dtype == dtype for g in grads.values())
    # integer covariances are accepted and computed in float.
    v = je.gaussian_entropy(jnp.eye(2, dtype=int))
    assert jnp.issubdtype(v.dtype, jnp.floating) and v.dtype.itemsize >= 4


def test_static_argument_checks():
    m, c = jnp.zeros(3), jnp.eye(3)
    with pytest.raises(ValueError, match="`cov` must be a batch of square matrices"):
        je.gaussian_entropy(jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="`cov` must be a batch of square matrices"):
        je.gaussian_entropy(jnp.zeros(3))
    with pytest.raises(TypeError, match="`cov` must hold real numbers"):
        je.gaussian_entropy(jnp.eye(2, dtype=complex))
    with pytest.raises(ValueError, match="`base`"):
        je.gaussian_entropy(c, base=1)
    with pytest.raises(ValueError, match="`log_var` must have shape"):
        je.gaussian_entropy_diag(jnp.array(0.0))
    with pytest.raises(ValueError, match="`mean_p` must have shape"):
        je.gaussian_kl(jnp.zeros(2), c, m, c)
    with pytest.raises(ValueError, match="`cov_q` must have the same shape"):
        je.gaussian_kl(m, c, m, jnp.eye(2))
    with pytest.raises(ValueError, match="`mean_q` must have the same shape"):
        je.gaussian_kl(m, c, jnp.zeros((1, 3)), c)
    with pytest.raises(ValueError, match="`cov_p` must be a batch of square matrices"):
        je.gaussian_kl(m, jnp.zeros((3, 2)), m, c)
    with pytest.raises(ValueError, match="`log_var_q` must have the same shape"):
        je.gaussian_kl_diag(m, m, m, jnp.zeros(2))
    with pytest.raises(ValueError, match=r"must have shape \[\.\.\., D\]"):
        je.gaussian_kl_diag(*(jnp.array(0.0),) * 4)
    with pytest.raises(TypeError, match="`mean_q` must be an array"):
        je.gaussian_kl_diag(m, m, "0", m)


def test_kl_keeps_relative_accuracy_for_tiny_log_variance_gaps():
    """e^d - 1 - d for |d| down to 1e-6: the difference expm1(d) - d alone keeps only
    eps / |d| of relative accuracy (9% at 1e-6 in float32). The diagonal form takes d as
    given (float32); the full form's d comes from the factorisation, which rounds it by
    about eps absolutely (float64 here, where that is 2e-10 of d at 1e-6)."""
    z1 = jnp.zeros(1, jnp.float32)
    for gap in (1e-2, 1e-4, 1e-6, -1e-6, -0.7, 0.9):
        d = jnp.asarray([gap], jnp.float32)
        want = 0.5 * mp_expm1_minus_identity(np.float64(d[0]))
        np.testing.assert_allclose(je.gaussian_kl_diag(z1, d, z1, z1), want, rtol=2e-6)
        cov = np.exp(np.array([[gap]]))
        want = 0.5 * mp_expm1_minus_identity(np.log(cov[0, 0]))
        np.testing.assert_allclose(
            je.gaussian_kl(np.zeros(1), cov, np.zeros(1), np.eye(1)), want, rtol=1e-9
        )


def mp_expm1_minus_identity(x: float) -> float:
    import mpmath

    with mpmath.workdps(50):
        return float(mpmath.expm1(mpmath.mpf(x)) - mpmath.mpf(x))


def test_kl_diag_finite_up_to_the_largest_float():
    """A log-variance gap of 89 in float32: e^89 / 2 = 2.2e38 is finite, though e^89 is not;
    the value and its derivative are finite."""
    z1 = jnp.zeros(1, jnp.float32)
    lv = jnp.array([89.0], jnp.float32)
    v = je.gaussian_kl_diag(z1, lv, z1, z1)
    want = 0.5 * (math.exp(89.0) - 1 - 89.0)
    np.testing.assert_allclose(v, want, rtol=1e-6)
    g = jgrad(lambda a: je.gaussian_kl_diag(z1, a, z1, z1))(lv)
    np.testing.assert_allclose(g, 0.5 * math.expm1(89.0), rtol=1e-6)
