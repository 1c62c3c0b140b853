"""The cost model: what will a configuration cost at a given resource (epochs, ...)?

:class:`CostModel` is a Bayesian linear regression of ``log(cumulative cost)`` on features of the
encoded parameters (unit cube; log-scaled where the space says log) and of ``log(resource)``:
the parameters, their squares, ``log r``, ``(log r)^2`` and each parameter times ``log r`` (so the
cost per epoch may depend on the configuration), plus an indicator per conditional dimension. The
prior precision and the noise precision are set by maximizing the evidence (MacKay's fixed-point
updates), so the model needs no tuning and its predictive spread is honest: a lognormal whose
log-variance is the noise plus the parameter uncertainty.

Training rows come from the measurements of the study's trials: each report's cumulative cost at
its step (at most ``rows_per_trial`` steps per trial, spread evenly on a log scale, so long curves
do not outweigh short ones). Trials that never reported a step contribute their total cost at
resource 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.space import Space
from thrifty.trial import Trial, TrialState


@dataclass(frozen=True)
class CostForecast:
    """A predicted cost in dollars: ``mean_usd`` (expected value), ``median_usd`` and a 90%
    interval ``[low_usd, high_usd]``; ``std_log`` is the standard deviation of log cost."""

    mean_usd: float
    median_usd: float
    low_usd: float
    high_usd: float
    std_log: float


class CostModel:
    """Predicts the dollars a configuration costs up to a resource level (see the module doc)."""

    def __init__(self, space: Space, rows_per_trial: int = 8, min_trials: int = 3) -> None:
        if rows_per_trial < 1:
            raise ValueError(f"CostModel(rows_per_trial={rows_per_trial}): expected an integer >= 1")
        if min_trials < 2:
            raise ValueError(f"CostModel(min_trials={min_trials}): expected an integer >= 2")
        self.space = space
        self.rows_per_trial = rows_per_trial
        self.min_trials = min_trials
        self._cond_dims = [i for i, n in enumerate(space.dim_names) if space[n].when]
        self._fitted = False
        self.n_trials = 0
        self.n_rows = 0

    # -- data ----------------------------------------------------------------------------------
    @staticmethod
    def observations(trial: Trial) -> list[tuple[float, float]]:
        """(resource, cumulative dollars) pairs of a trial, from its measurements."""
        pairs: list[tuple[float, float]] = []
        total = 0.0
        for m in trial.measurements:
            total += m.cost_usd
            if m.step is not None and m.step > 0:
                if pairs and pairs[-1][0] == m.step:
                    pairs[-1] = (float(m.step), total)
                else:
                    pairs.append((float(m.step), total))
        if pairs and total > pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], total)  # the cost told at the end belongs to the last step
        if not pairs and total > 0:
            pairs.append((1.0, total))
        return [(r, c) for r, c in pairs if c > 0]

    def _features(self, x: np.ndarray, resource: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        inactive = np.isnan(x)
        xf = np.where(inactive, 0.5, x)
        z = np.log(np.maximum(resource, 1e-12))[:, None]
        parts = [xf, xf**2, z, z**2, xf * z]
        if self._cond_dims:
            parts.append(inactive[:, self._cond_dims].astype(float))
        return np.hstack(parts)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, trials: Sequence[Trial]) -> CostModel:
        """Fit on the trials' measured costs. Trials without any cost are ignored."""
        xs, rs, ys = [], [], []
        n_trials = 0
        for t in trials:
            if t.state is TrialState.PENDING:
                continue
            obs = self.observations(t)
            if not obs:
                continue
            n_trials += 1
            if len(obs) > self.rows_per_trial:
                idx = np.unique(np.round(np.geomspace(1, len(obs), self.rows_per_trial)).astype(int) - 1)
                obs = [obs[i] for i in idx]
            x = self.space.encode(t.params)
            for r, c in obs:
                xs.append(x)
                rs.append(r)
                ys.append(math.log(c))
        self.n_trials, self.n_rows = n_trials, len(ys)
        self._fitted = n_trials >= self.min_trials
        if not ys:
            self._fallback = None
            return self
        y = np.asarray(ys)
        self._fallback = (float(np.mean(y)), float(np.std(y)) if len(y) > 1 else 1.0, float(np.median(rs)))
        if not self._fitted:
            return self
        phi = self._features(np.asarray(xs), np.asarray(rs, dtype=float))
        self._mu_x = phi.mean(axis=0)
        self._sd_x = phi.std(axis=0)
        self._sd_x[self._sd_x < 1e-12] = 1.0
        phi = (phi - self._mu_x) / self._sd_x
        self._mu_y = float(y.mean())
        t = y - self._mu_y
        n, p = phi.shape
        gram = phi.T @ phi
        eig = np.linalg.eigvalsh(gram).clip(min=0.0)
        alpha, beta = 1.0, 1.0 / max(float(np.var(t)), 1e-6)
        for _ in range(100):
            a = alpha * np.eye(p) + beta * gram
            mean = beta * np.linalg.solve(a, phi.T @ t)
            lam = beta * eig
            gamma = float(np.sum(lam / (alpha + lam)))
            new_alpha = gamma / max(float(mean @ mean), 1e-12)
            resid = float(np.sum((t - phi @ mean) ** 2))
            new_beta = max(n - gamma, 1e-6) / max(resid, 1e-12)
            new_beta = min(new_beta, 1e6)
            converged = abs(new_alpha - alpha) < 1e-6 * alpha and abs(new_beta - beta) < 1e-6 * beta
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        a = alpha * np.eye(p) + beta * gram
        self._cov = np.linalg.inv(a)
        self._mean = beta * self._cov @ (phi.T @ t)
        self._beta = beta
        return self

    @property
    def is_fitted(self) -> bool:
        """True once at least ``min_trials`` trials with costs were seen."""
        return self._fitted

    # -- prediction ----------------------------------------------------------------------------
    def predict_log(self, params: Sequence[Mapping[str, Any]], resource: float | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(dollars) for each params at the resource(s)."""
        n = len(params)
        r = np.broadcast_to(np.asarray(resource, dtype=float), (n,))
        if not self._fitted:
            if getattr(self, "_fallback", None) is None:
                raise ValueError("the cost model has seen no trial with a cost yet")
            mu, sd, r0 = self._fallback
            # Without a model, cost is assumed proportional to the resource.
            return mu + np.log(np.maximum(r, 1e-12) / r0), np.full(n, max(sd, 0.5))
        x = np.vstack([self.space.encode(p) for p in params])
        phi = (self._features(x, r) - self._mu_x) / self._sd_x
        mean = phi @ self._mean + self._mu_y
        var = 1.0 / self._beta + np.einsum("ij,jk,ik->i", phi, self._cov, phi)
        return mean, np.sqrt(var)

    def predict(self, params: Mapping[str, Any], resource: float = 1.0) -> CostForecast:
        """The cost forecast of one configuration trained up to ``resource``."""
        mu, sd = self.predict_log([params], resource)
        m, s = float(mu[0]), float(sd[0])
        return CostForecast(
            mean_usd=math.exp(m + s * s / 2), median_usd=math.exp(m), low_usd=math.exp(m - 1.645 * s),
            high_usd=math.exp(m + 1.645 * s), std_log=s,
        )

    def expected_cost(self, space_sample: Sequence[Mapping[str, Any]], resource: float) -> float:
        """Mean predicted dollars of a configuration drawn like ``space_sample`` (e.g. random)."""
        mu, sd = self.predict_log(space_sample, resource)
        return float(np.mean(np.exp(mu + sd**2 / 2)))
