"""The shared numerical core (thrifty.numerics): Cholesky, kernels, log evidence, posterior,
the strategies' GP, acquisition functions and hyperparameter search, against direct numpy/scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

import thrifty as th
from thrifty.encoding import encoder_of
from thrifty.numerics.acquisition import gradient_refine, log_ei, log_ei_grad, log_prob_below, log_prob_below_grad
from thrifty.numerics.features import GroupFeatures, hamming_mask, values_with_indicators
from thrifty.numerics.fitting import best_of_starts, slice_sample
from thrifty.numerics.gp import GaussianProcess
from thrifty.numerics.kernels import matern, matern32, matern52, sq_dists
from thrifty.numerics.linalg import chol, chol_growing_jitter, chol_one_retry
from thrifty.numerics.posterior import neg_log_evidence, posterior_weights

RNG = np.random.default_rng(0)


def spd(n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


def test_posterior_weights_match_a_direct_solve() -> None:
    k, y = spd(12, RNG), RNG.standard_normal(12)
    for fallback in ("growing_jitter", "one_retry"):
        alpha, kinv = posterior_weights(k, y, fallback)
        assert np.allclose(alpha, np.linalg.solve(k, y), rtol=1e-10, atol=1e-12)
        assert np.allclose(kinv, np.linalg.inv(k), rtol=1e-10, atol=1e-12)


def test_singular_matrices_get_jitter() -> None:
    v = RNG.standard_normal((6, 2))
    k = v @ v.T  # rank 2
    assert chol(k - 1e-3 * np.eye(6)) is None
    c = chol_growing_jitter(k - 1e-3 * np.eye(6))
    assert np.all(np.isfinite(c)) and np.allclose(np.tril(c), c)
    c1 = chol_one_retry(k)
    assert c1 is not None and np.allclose(c1 @ c1.T, k, atol=1e-5 * np.max(np.diag(k)))


def test_neg_log_evidence_is_the_gaussian_formula() -> None:
    k, y = spd(9, RNG), RNG.standard_normal(9)
    got = neg_log_evidence(k, y)
    assert got is not None
    val, w = got
    kinv = np.linalg.inv(k)
    assert val == pytest.approx(0.5 * y @ kinv @ y + 0.5 * np.linalg.slogdet(k)[1], rel=1e-12)
    assert w is not None and np.allclose(w, kinv - np.outer(kinv @ y, kinv @ y), atol=1e-12)
    assert neg_log_evidence(k, y, with_w=False) == (val, None)
    assert neg_log_evidence(-k, y) is None


@pytest.mark.parametrize("kernel, nu", [(matern32, 1.5), (matern52, 2.5)])
def test_matern_values_and_derivative(kernel, nu) -> None:
    r2 = np.array([0.0, 0.01, 0.3, 2.0, 9.0])
    k, dk = kernel(r2, 1.7)
    assert k[0] == pytest.approx(1.7) and np.all(np.diff(k) < 0)
    h = 1e-7
    numeric = (kernel(r2[1:] + h, 1.7)[0] - kernel(r2[1:] - h, 1.7)[0]) / (2 * h)
    assert np.allclose(dk[1:], numeric, rtol=1e-5)
    assert np.array_equal(matern(r2, 1.7, nu)[0], k)
    r = math.sqrt((3.0 if nu == 1.5 else 5.0) * 0.3)
    poly = 1 + r if nu == 1.5 else 1 + r + r * r / 3
    assert k[2] == pytest.approx(1.7 * poly * math.exp(-r), rel=1e-14)


def test_sq_dists_per_dimension_with_hamming_columns() -> None:
    a = np.array([[0.1, 0.25], [0.5, 0.75]])
    d = sq_dists(a, a, np.array([False, True]))
    assert d.shape == (2, 2, 2)
    assert d[0, 1, 0] == pytest.approx(0.16) and d[0, 1, 1] == 1.0 and d[1, 1, 1] == 0.0


SPACE = th.Space({"x": th.Float(0, 1), "c": th.Categorical(["a", "b", "c"]), "y": th.Float(0, 1, when={"c": "a"})})


def test_group_features_one_hot_and_indicators() -> None:
    enc = encoder_of(SPACE)
    feat = GroupFeatures(enc)
    assert feat.n_cols == 1 + 3 + 1 + 1 and feat.n_groups == 4
    x = enc.encode([{"x": 0.2, "c": "a", "y": 0.4}, {"x": 0.2, "c": "b"}])
    f = feat.features(x)
    d = feat.group_sq_dists(f)
    # groups: x, c (one-hot: different choices at squared distance 1), y (0.5 where inactive), y's indicator
    assert d[0, 1].tolist() == pytest.approx([0.0, 1.0, 0.01, 1.0])
    inputs, filled = values_with_indicators(enc, x)
    assert inputs.shape == (2, 4) and inputs[1, 2] == 0.5 and inputs[:, 3].tolist() == [0.0, 1.0]
    assert filled.shape == (2, 3)
    assert hamming_mask(enc).tolist() == [False, True, False, True]


def fitted_gp(n: int = 25) -> tuple[GaussianProcess, np.ndarray, np.ndarray]:
    enc = encoder_of(SPACE)
    feat = GroupFeatures(enc)
    rng = np.random.default_rng(3)
    x = enc.snap(rng.random((n, enc.n_dims)))
    y = np.sin(6 * np.nan_to_num(x[:, 0])) + 0.3 * (np.nan_to_num(x[:, 1]) > 0.4)
    y = (y - y.mean()) / y.std()
    gp = GaussianProcess(feat)
    f = feat.features(x)
    starts = gp.default_starts() + [gp.random_start(rng)]
    theta = gp.fit(f, y, starts)
    lo, hi = np.array(gp.bounds).T
    assert np.all((lo <= theta) & (theta <= hi))
    d2 = feat.group_sq_dists(f).reshape(n * n, feat.n_groups)
    assert gp.neg_log_posterior(theta, d2, y)[0] <= min(gp.neg_log_posterior(s, d2, y)[0] for s in starts)
    return gp.condition(theta, f, y), f, y


def test_gp_posterior_against_a_direct_numpy_solve() -> None:
    gp, f, y = fitted_gp()
    fs = GroupFeatures(encoder_of(SPACE)).features(encoder_of(SPACE).snap(np.random.default_rng(4).random((7, 3))))

    def kern(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        za, zb = a * gp.scale, b * gp.scale
        r2 = ((za[:, None, :] - zb[None, :, :]) ** 2).sum(axis=2)
        return matern52(r2, gp.amp)[0]

    k = kern(f, f) + gp.noise * np.eye(len(y))
    ks = kern(fs, f)
    mean, var = gp.predict(fs)
    assert np.allclose(mean, ks @ np.linalg.solve(k, y), atol=1e-8)
    assert np.allclose(var, np.maximum(gp.amp - np.einsum("mn,mn->m", ks @ np.linalg.inv(k), ks), 1e-12), atol=1e-8)
    assert np.allclose(gp.train_mean(), kern(f, f) @ np.linalg.solve(k, y), atol=1e-6)


def test_gp_gradients_match_finite_differences() -> None:
    gp, f, y = fitted_gp()
    theta = np.r_[np.full(gp.g, math.log(0.2)), 0.0, math.log(1e-2)]  # short length scales: a bumpy posterior
    gp = GaussianProcess(gp.feat).condition(theta, f[:6], y[:6])
    cont = np.array([0, 4])  # the feature columns of x and y
    fs = f[6:9].copy()
    mean, var, dmean, dvar = gp.predict_grad(fs, cont)
    assert np.all(var > 1e-2)
    h = 1e-6
    for j, col in enumerate(cont):
        up, down = fs.copy(), fs.copy()
        up[:, col] += h
        down[:, col] -= h
        (mu_u, v_u), (mu_d, v_d) = gp.predict(up), gp.predict(down)
        assert np.allclose(dmean[:, j], (mu_u - mu_d) / (2 * h), rtol=1e-4, atol=1e-6)
        assert np.allclose(dvar[:, j], (v_u - v_d) / (2 * h), rtol=1e-4, atol=1e-6)


def test_log_ei_is_the_closed_form_and_stable_far_below() -> None:
    mean = np.array([0.0, 0.5, -1.0, 3.0])
    var = np.array([1.0, 0.25, 4.0, 0.01])
    sd = np.sqrt(var)
    z = (0.2 - mean) / sd
    direct = np.log(sd * (z * norm.cdf(z) + norm.pdf(z)))
    assert np.allclose(log_ei(mean, var, 0.2), direct, rtol=1e-10)
    far = log_ei(np.array([10.0, 40.0, 1e6]), np.array([1e-4, 1e-4, 1e-4]), 0.0)
    assert np.all(np.isfinite(far)) and np.all(np.diff(far) < 0)  # no underflow to -inf
    assert np.allclose(log_prob_below(mean, var, 0.2), norm.logcdf(z), rtol=1e-12)


def test_acquisition_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x = rng.random((4, 2))

    def moments(p: np.ndarray) -> tuple[np.ndarray, ...]:
        mean = np.sin(3 * p[:, 0]) + p[:, 1] ** 2
        var = 0.1 + p[:, 0] ** 2 * p[:, 1]
        dmean = np.stack([3 * np.cos(3 * p[:, 0]), 2 * p[:, 1]], axis=1)
        dvar = np.stack([2 * p[:, 0] * p[:, 1], p[:, 0] ** 2], axis=1)
        return mean, var, dmean, dvar

    for value, grad_fn in ((lambda m, v: log_ei(m, v, 0.1), lambda *a: log_ei_grad(*a, 0.1)),
                           (lambda m, v: log_prob_below(m, v, 0.1), lambda *a: log_prob_below_grad(*a, 0.1))):
        val, grad = grad_fn(*moments(x))
        assert np.allclose(val, value(*moments(x)[:2]))
        h = 1e-6
        for j in range(2):
            up, down = x.copy(), x.copy()
            up[:, j] += h
            down[:, j] -= h
            numeric = (value(*moments(up)[:2]) - value(*moments(down)[:2])) / (2 * h)
            assert np.allclose(grad[:, j], numeric, rtol=1e-4, atol=1e-7)


def test_gradient_refine_climbs_only_free_coordinates() -> None:
    target = np.array([0.3, 0.8])

    def value_grad(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return -((p - target) ** 2).sum(axis=1), -2 * (p - target)

    x = np.array([[0.9, 0.1], [0.0, 0.0]])
    free = np.array([[True, True], [True, False]])
    out = gradient_refine(value_grad, x, free, np.array([0, 1]))
    assert np.allclose(out[0], target, atol=1e-5)
    assert out[1, 0] == pytest.approx(0.3, abs=1e-5) and out[1, 1] == 0.0  # not free: untouched


def test_best_of_starts_keeps_the_lowest_and_slice_sampling_the_density() -> None:
    def fun(th_: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum((th_ ** 2 - 1.0) ** 2) + 0.1 * th_[0]), 4 * th_ * (th_ ** 2 - 1.0) + np.r_[0.1, 0.0]

    best = best_of_starts(fun, [np.array([0.9, 1.0]), np.array([-0.9, 1.0])], [(-2, 2), (-2, 2)], "L-BFGS-B")
    assert best[0] < 0  # the lower of the two wells
    rng = np.random.default_rng(0)
    draws = np.array(slice_sample(lambda t: -0.5 * float(t @ t), np.zeros(1), [(-3.0, 3.0)], rng, 3000))
    assert np.all(np.abs(draws) <= 3.0)
    assert abs(draws.mean()) < 0.25 and 0.75 < draws.var() < 1.3  # correlated draws: loose bounds
