"""The Gaussian process of the GP strategies (``gp``, ``mfgp``, ``bohb`` with ``inner="gp"``).

Zero mean on standardised targets, an ARD Matérn-5/2 kernel over the groups of
:class:`~thrifty.numerics.features.GroupFeatures` (one length scale per group) with an amplitude,
and Gaussian noise with a floor. The hyperparameters ``theta = [log length scale of each group...,
log amplitude, log noise variance]`` are the maximum a posteriori under weak log-normal priors,
found by L-BFGS-B with analytic gradients from several starts. Prediction gives the latent mean
and variance, and their gradients with respect to the continuous inputs. Inputs are features of
points in the unit cube; targets are standardised (dimensionless).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thrifty.numerics.features import GroupFeatures
from thrifty.numerics.fitting import best_of_starts
from thrifty.numerics.kernels import matern52
from thrifty.numerics.posterior import neg_log_evidence, posterior_weights

# -- hyperparameter priors and bounds (targets standardised, inputs in the unit cube) ------------
_LOG_NOISE_FLOOR = math.log(1e-6)
#: Added to the noise variance on the kernel's diagonal (share of the data's variance).
JITTER = 1e-9
_BOUNDS_LS = (math.log(0.01), math.log(1000.0))
_BOUNDS_AMP = (math.log(1e-3), math.log(100.0))
_BOUNDS_NOISE = (_LOG_NOISE_FLOOR, math.log(2.0))
_AMP_PRIOR = (0.0, 1.0)  # log amplitude ~ N(0, 1)
_NOISE_PRIOR = (-8.0, 1.5)  # log noise variance ~ N(-8, 1.5^2): median 3e-4 of the data's variance
_LS_PRIOR_SD = math.sqrt(3.0)


def ls_prior_mean(n_groups: int) -> float:
    """Dimension-scaled log-normal length-scale prior (Hvarfner et al. 2024): a length scale's
    log has mean ``sqrt(2) + log(d) / 2``, so higher-dimensional models start smoother."""
    return math.sqrt(2.0) + 0.5 * math.log(max(n_groups, 1))


class GaussianProcess:
    """ARD Matérn-5/2 GP over :class:`GroupFeatures` (module doc): :meth:`fit` the
    hyperparameters, :meth:`condition` on data, then :meth:`predict`."""

    def __init__(self, features: GroupFeatures) -> None:
        self.feat = features
        self.g = features.n_groups
        self.ls_mean = ls_prior_mean(self.g)
        self.bounds = [_BOUNDS_LS] * self.g + [_BOUNDS_AMP, _BOUNDS_NOISE]

    # -- hyperparameters ----------------------------------------------------------------------
    def neg_log_posterior(self, th: np.ndarray, d2: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The negative log posterior of ``th`` (up to a constant) and its gradient, for the
        per-group squared distances ``d2`` (shape ``(n * n, n_groups)``) and targets ``y``."""
        g = self.g
        n = len(y)
        w = np.exp(-2.0 * th[:g])
        amp = math.exp(th[g])
        noise = math.exp(th[g + 1])
        kf, dk = matern52((d2 @ w).reshape(n, n), amp)
        k = kf.copy()
        k[np.diag_indices(n)] += noise + JITTER
        ev = neg_log_evidence(k, y)
        if ev is None:
            return 1e10, np.zeros_like(th)
        val, wm = ev
        assert wm is not None
        u_ls = (th[:g] - self.ls_mean) / _LS_PRIOR_SD
        u_amp = (th[g] - _AMP_PRIOR[0]) / _AMP_PRIOR[1]
        u_noise = (th[g + 1] - _NOISE_PRIOR[0]) / _NOISE_PRIOR[1]
        val = val + 0.5 * (float(u_ls @ u_ls) + u_amp * u_amp + u_noise * u_noise)
        grad = np.empty_like(th)
        # dK/dlog(l_j) = dk/d(r2) * D_j * (-2 w_j)
        grad[:g] = -w * ((wm * dk).ravel() @ d2)
        grad[g] = 0.5 * float(np.sum(wm * kf))
        grad[g + 1] = 0.5 * float(np.trace(wm)) * noise
        grad[:g] += u_ls / _LS_PRIOR_SD
        grad[g] += u_amp / _AMP_PRIOR[1]
        grad[g + 1] += u_noise / _NOISE_PRIOR[1]
        return val, grad

    def default_starts(self) -> list[np.ndarray]:
        """Two fixed starting points of the hyperparameter search."""
        g = self.g
        return [
            np.r_[np.full(g, self.ls_mean - 1.0), 0.0, -6.0],
            np.r_[np.full(g, math.log(0.3 * math.sqrt(g))), 0.0, math.log(1e-3)],
        ]

    def random_start(self, rng: np.random.Generator) -> np.ndarray:
        """A random starting point around the priors, inside the bounds."""
        g = self.g
        th = np.r_[rng.normal(self.ls_mean - 1.0, 1.0, g), rng.normal(0.0, 0.5), rng.uniform(-9.0, -3.0)]
        lo, hi = np.array(self.bounds).T
        return np.clip(th, lo, hi)

    def fit(self, f: np.ndarray, y: np.ndarray, starts: Sequence[np.ndarray], maxiter: int = 200) -> np.ndarray:
        """The MAP hyperparameters for features ``f`` and standardised targets ``y``, by L-BFGS-B
        (at most ``maxiter`` iterations) from each of ``starts``; returns the best."""
        n = len(y)
        d2 = self.feat.group_sq_dists(f).reshape(n * n, self.g)
        return best_of_starts(self.neg_log_posterior, starts, self.bounds, "L-BFGS-B", args=(d2, y),
                              options={"maxiter": maxiter})

    # -- the posterior ------------------------------------------------------------------------
    def condition(self, theta: np.ndarray, f: np.ndarray, y: np.ndarray) -> GaussianProcess:
        """Set the hyperparameters and the training data (features, standardised targets)."""
        g = self.g
        self.theta = np.asarray(theta, dtype=float)
        self.w = np.exp(-2.0 * self.theta[:g])
        self.amp = math.exp(self.theta[g])
        self.noise = math.exp(self.theta[g + 1]) + JITTER
        self.scale = np.sqrt(self.w[self.feat.col_group])  # per feature column
        self.f, self.y = f, y
        self.z = f * self.scale
        self.zz = np.sum(self.z * self.z, axis=1)
        kf, _ = matern52(self._r2(self.z), self.amp)
        k = kf.copy()
        k[np.diag_indices(len(y))] += self.noise
        self.alpha, self.kinv = posterior_weights(k, y, "growing_jitter")
        return self

    def _r2(self, z: np.ndarray) -> np.ndarray:
        r2 = np.sum(z * z, axis=1)[:, None] + self.zz[None, :] - 2.0 * (z @ self.z.T)
        return np.maximum(r2, 0.0)

    def train_mean(self) -> np.ndarray:
        """Posterior mean at the training inputs (the targets minus the noise's share)."""
        return self.y - self.noise * self.alpha

    def predict(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent mean and variance at features ``f`` (rows)."""
        ks, _ = matern52(self._r2(f * self.scale), self.amp)
        mean = ks @ self.alpha
        var = self.amp - np.einsum("mn,mn->m", ks @ self.kinv, ks)
        return mean, np.maximum(var, 1e-12)

    def predict_grad(self, f: np.ndarray, cont: np.ndarray) -> tuple[np.ndarray, ...]:
        """Latent mean, variance and their gradients in the feature columns ``cont`` (the
        continuous dims' columns, which equal the inputs there): shapes (m,), (m,), (m, c), (m, c)."""
        ks, dk = matern52(self._r2(f * self.scale), self.amp)
        v = ks @ self.kinv
        mean = ks @ self.alpha
        var = np.maximum(self.amp - np.einsum("mn,mn->m", v, ks), 1e-12)
        wc = self.w[self.feat.col_group[cont]]
        xc, tc = f[:, cont], self.f[:, cont]
        gm = dk * self.alpha[None, :]  # (m, n)
        gv = dk * v
        # d r2 / d x_c = 2 w_c (x_c - t_c)
        dmean = 2.0 * wc * (xc * gm.sum(axis=1)[:, None] - gm @ tc)
        dvar = -4.0 * wc * (xc * gv.sum(axis=1)[:, None] - gv @ tc)
        return mean, var, dmean, dvar
