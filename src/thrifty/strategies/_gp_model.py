"""The Gaussian-process machinery behind :mod:`thrifty.strategies.gp`.

* :class:`Encoding`: from the space's unit cube (:meth:`~thrifty.space.Space.encode`) to *canonical*
  points (ints and categoricals snapped to their cell centres, inactive conditional dimensions
  ``nan``, all vectorised) and from canonical points to kernel *features*: floats and ints as one
  column each (the unit value, log-scaled where the space says log; 0.5 where inactive),
  categoricals one-hot (scaled by ``1/sqrt(2)``, so their squared distance is 1 when the choices
  differ: a Hamming term), and one 0/1 "inactive" indicator per conditional dimension. Each float,
  int, categorical and indicator is one *group* with its own length scale.
* :class:`GP`: zero-mean GP on standardised targets with an ARD Matérn-5/2 kernel over the
  groups, Gaussian noise with a floor; hyperparameters (log length scales, log amplitude, log
  noise) are the maximum a posteriori under weak log-normal priors, found with L-BFGS-B and
  analytic gradients. Prediction gives the latent mean and variance, and their gradients with
  respect to the continuous inputs.
* :func:`log_h` and friends: the numerically stable log expected improvement of Ament et al.
  (2023), "Unexpected improvements to expected improvement for Bayesian optimization".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import lapack
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr, ndtr

from thrifty.space import Categorical, Fixed, Float, Int, Space, _choice_key

# -- hyperparameter priors and bounds (targets standardised, inputs in the unit cube) ------------
_LOG_NOISE_FLOOR = math.log(1e-6)
_JITTER = 1e-9
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


# -- linear algebra -------------------------------------------------------------------------------
def chol(k: np.ndarray) -> np.ndarray | None:
    c, info = lapack.dpotrf(k, lower=1, clean=1)
    return c if info == 0 else None


def chol_robust(k: np.ndarray) -> np.ndarray:
    """Cholesky factor, adding jitter to the diagonal until it succeeds."""
    c = chol(k)
    jitter = 1e-8 * max(float(np.mean(np.diag(k))), 1e-12)
    while c is None:
        c = chol(k + jitter * np.eye(len(k)))
        jitter *= 10.0
    return c


def chol_solve(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    return lapack.dpotrs(c, b, lower=1)[0]


def chol_inv(c: np.ndarray) -> np.ndarray:
    li = lapack.dtrtri(c, lower=1)[0]
    return li.T @ li


def matern52(r2: np.ndarray, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 values at squared scaled distances ``r2``, and their derivative in ``r2``."""
    r = np.sqrt(5.0 * np.maximum(r2, 0.0))
    e = amp * np.exp(-r)
    return (1.0 + r + r * r / 3.0) * e, (-5.0 / 6.0) * (1.0 + r) * e


# -- the encoding ---------------------------------------------------------------------------------
class Encoding:
    """Canonical points and kernel features of a space (see the module doc)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        names = space.dim_names
        self.n_dims = len(names)
        index = {n: i for i, n in enumerate(names)}
        self._index = index
        self.kinds: list[str] = []
        self.sizes: list[int] = []  # values of ints / choices of categoricals (0 for floats)
        for n in names:
            p = space[n]
            if isinstance(p, Float):
                self.kinds.append("float")
                self.sizes.append(0)
            elif isinstance(p, Int):
                self.kinds.append("int_log" if p.log else "int")
                self.sizes.append(p.n_values)
            else:
                assert isinstance(p, Categorical)
                self.kinds.append("cat")
                self.sizes.append(len(p.choices))
        self.cont = np.array([i for i, k in enumerate(self.kinds) if k != "cat"], dtype=int)
        self.cats = np.array([i for i, k in enumerate(self.kinds) if k == "cat"], dtype=int)
        self.conditional = np.array([index[n] for n in names if space[n].when], dtype=int)
        # Feature columns: one per continuous dim, one-hot per categorical, one indicator per
        # conditional dim; each dim/indicator is a group with its own length scale.
        col_group: list[int] = []
        self.dim_col = np.zeros(self.n_dims, dtype=int)  # first feature column of each dim
        g = 0
        for i, k in enumerate(self.kinds):
            self.dim_col[i] = len(col_group)
            width = self.sizes[i] if k == "cat" else 1
            col_group.extend([g] * width)
            g += 1
        for _ in self.conditional:
            col_group.append(g)
            g += 1
        self.col_group = np.array(col_group, dtype=int)
        self.n_groups = g
        self.n_cols = len(col_group)
        # The sampling program: space order (parents first) with what each condition needs.
        self._program: list[tuple[str, Any, int, list[tuple[str, Any]]]] = []
        for n, p in space.items():
            conds = []
            for parent, values in p.when:
                pp = space[parent]
                if isinstance(pp, Categorical):
                    conds.append((parent, np.array(sorted({pp.index(v) for v in values}))))
                elif isinstance(pp, Int):
                    conds.append((parent, np.array(sorted({int(v) for v in values}))))
                else:
                    assert isinstance(pp, Fixed)
                    keys = {_choice_key(v) for v in values}
                    conds.append((parent, _choice_key(pp.value) in keys))
            self._program.append((n, p, index.get(n, -1), conds))

    # -- canonical points ---------------------------------------------------------------------
    def canonical(self, u: np.ndarray) -> np.ndarray:
        """Snap points of the unit cube (rows of ``u``) to what :meth:`Space.decode` makes of them,
        re-encoded: ints and categoricals at their cell centres, inactive dimensions ``nan``."""
        u = np.clip(np.nan_to_num(np.atleast_2d(np.asarray(u, dtype=float)), nan=0.5), 0.0, 1.0)
        m = len(u)
        x = np.full_like(u, np.nan)
        active: dict[str, np.ndarray] = {}
        value: dict[str, np.ndarray] = {}  # int values / categorical indices, for conditions
        for name, p, i, conds in self._program:
            act = np.ones(m, dtype=bool)
            for parent, allowed in conds:
                act &= active[parent]
                if isinstance(allowed, np.ndarray):
                    act &= np.isin(value[parent], allowed)
                elif not allowed:
                    act[:] = False
            active[name] = act
            if i < 0:
                continue
            col = u[:, i]
            if isinstance(p, Float):
                xi = col
            elif isinstance(p, Int) and not p.log:
                idx = np.minimum((col * p.n_values).astype(int), p.n_values - 1)
                value[name] = p.low + idx * p.step
                xi = (idx + 0.5) / p.n_values
            elif isinstance(p, Int):
                lo, hi = p._log_bounds()
                v = np.clip(np.rint(np.exp(lo + col * (hi - lo))), p.low, p.high)
                value[name] = v.astype(int)
                xi = (np.log(v) - lo) / (hi - lo)
            else:
                k = len(p.choices)
                idx = np.minimum((col * k).astype(int), k - 1)
                value[name] = idx
                xi = (idx + 0.5) / k
            x[:, i] = np.where(act, xi, np.nan)
        return x

    def keys(self, x: np.ndarray) -> list[bytes]:
        """Hashable keys of canonical points (for duplicate checks)."""
        return [row.tobytes() for row in np.round(np.nan_to_num(x, nan=-1.0), 9)]

    # -- features -----------------------------------------------------------------------------
    def features(self, x: np.ndarray) -> np.ndarray:
        """Kernel features of canonical points: shape ``(m, n_cols)``."""
        x = np.atleast_2d(x)
        m = len(x)
        f = np.zeros((m, self.n_cols))
        inactive = np.isnan(x)
        xf = np.where(inactive, 0.5, x)
        f[:, self.dim_col[self.cont]] = xf[:, self.cont]
        for i in self.cats:
            k = self.sizes[i]
            idx = np.minimum((xf[:, i] * k).astype(int), k - 1)
            rows = np.flatnonzero(~inactive[:, i])
            f[rows, self.dim_col[i] + idx[rows]] = math.sqrt(0.5)
        if len(self.conditional):
            f[:, self.n_cols - len(self.conditional):] = inactive[:, self.conditional]
        return f

    def group_sq_dists(self, f: np.ndarray) -> np.ndarray:
        """Per-group squared feature distances between all pairs: shape ``(n, n, n_groups)``."""
        diff2 = (f[:, None, :] - f[None, :, :]) ** 2
        if self.n_groups == self.n_cols:  # one column per group (no categorical)
            return diff2
        n = len(f)
        d = np.empty((n, n, self.n_groups))
        starts = np.r_[0, np.flatnonzero(np.diff(self.col_group)) + 1, self.n_cols]
        for g in range(self.n_groups):
            d[:, :, g] = diff2[:, :, starts[g]:starts[g + 1]].sum(axis=2)
        return d

    # -- discrete moves -----------------------------------------------------------------------
    def neighbours(self, u: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Unit-cube points one discrete step from ``(u, x)``: every other choice of each active
        categorical, the next value up and down of each active int."""
        out = []
        for i, kind in enumerate(self.kinds):
            if np.isnan(x[i]) or kind == "float":
                continue
            k = self.sizes[i]
            if kind == "cat":
                cur = min(int(x[i] * k), k - 1)
                for c in range(k):
                    if c != cur:
                        v = u.copy()
                        v[i] = (c + 0.5) / k
                        out.append(v)
            elif kind == "int":
                cur = min(int(x[i] * k), k - 1)
                for c in (cur - 1, cur + 1):
                    if 0 <= c < k:
                        v = u.copy()
                        v[i] = (c + 0.5) / k
                        out.append(v)
            else:  # log int: the values next to the current one
                p = self.space[self.space.dim_names[i]]
                assert isinstance(p, Int)
                lo, hi = p._log_bounds()
                cur = int(round(math.exp(lo + x[i] * (hi - lo))))
                for c in (cur - 1, cur + 1):
                    if p.low <= c <= p.high:
                        v = u.copy()
                        v[i] = (math.log(c) - lo) / (hi - lo)
                        out.append(v)
        return np.array(out) if out else np.empty((0, self.n_dims))

    def enumerate_all(self, limit: int) -> np.ndarray | None:
        """Every canonical point of an all-discrete space, or ``None`` if it has a float or more
        than ``limit`` raw combinations."""
        if any(k == "float" for k in self.kinds):
            return None
        total = 1
        for s in self.sizes:
            total *= s
            if total > limit:
                return None
        grids = []
        for i, kind in enumerate(self.kinds):
            k = self.sizes[i]
            if kind == "int_log":
                p = self.space[self.space.dim_names[i]]
                assert isinstance(p, Int)
                lo, hi = p._log_bounds()
                grids.append(np.array([(math.log(v) - lo) / (hi - lo) for v in p.values()]))
            else:
                grids.append((np.arange(k) + 0.5) / k)
        mesh = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, self.n_dims)
        x = self.canonical(mesh)
        _, first = np.unique(np.nan_to_num(x, nan=-1.0), axis=0, return_index=True)
        return x[np.sort(first)]


# -- the Gaussian process -------------------------------------------------------------------------
class GP:
    """ARD Matérn-5/2 GP over :class:`Encoding` features (see the module doc).

    ``theta = [log length scale of each group..., log amplitude, log noise variance]``."""

    def __init__(self, enc: Encoding) -> None:
        self.enc = enc
        self.g = enc.n_groups
        self.ls_mean = ls_prior_mean(self.g)
        self.bounds = [_BOUNDS_LS] * self.g + [_BOUNDS_AMP, _BOUNDS_NOISE]

    # -- hyperparameters ----------------------------------------------------------------------
    def _neg_log_post(self, th: np.ndarray, d2: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        g = self.g
        n = len(y)
        w = np.exp(-2.0 * th[:g])
        amp = math.exp(th[g])
        noise = math.exp(th[g + 1])
        kf, dk = matern52((d2 @ w).reshape(n, n), amp)
        k = kf.copy()
        k[np.diag_indices(n)] += noise + _JITTER
        c = chol(k)
        if c is None:
            return 1e10, np.zeros_like(th)
        alpha = chol_solve(c, y)
        u_ls = (th[:g] - self.ls_mean) / _LS_PRIOR_SD
        u_amp = (th[g] - _AMP_PRIOR[0]) / _AMP_PRIOR[1]
        u_noise = (th[g + 1] - _NOISE_PRIOR[0]) / _NOISE_PRIOR[1]
        val = (0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(c))))
               + 0.5 * (float(u_ls @ u_ls) + u_amp * u_amp + u_noise * u_noise))
        wm = chol_inv(c) - np.outer(alpha, alpha)
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
        g = self.g
        return [
            np.r_[np.full(g, self.ls_mean - 1.0), 0.0, -6.0],
            np.r_[np.full(g, math.log(0.3 * math.sqrt(g))), 0.0, math.log(1e-3)],
        ]

    def random_start(self, rng: np.random.Generator) -> np.ndarray:
        g = self.g
        th = np.r_[rng.normal(self.ls_mean - 1.0, 1.0, g), rng.normal(0.0, 0.5), rng.uniform(-9.0, -3.0)]
        lo, hi = np.array(self.bounds).T
        return np.clip(th, lo, hi)

    def fit(self, f: np.ndarray, y: np.ndarray, starts: Sequence[np.ndarray], maxiter: int = 200) -> np.ndarray:
        """The MAP hyperparameters for features ``f`` and standardised targets ``y``, by L-BFGS-B
        from each of ``starts``; returns the best."""
        n = len(y)
        d2 = self.enc.group_sq_dists(f).reshape(n * n, self.g)
        best_val, best = math.inf, np.asarray(starts[0], dtype=float)
        for s in starts:
            res = minimize(self._neg_log_post, s, args=(d2, y), jac=True, method="L-BFGS-B",
                           bounds=self.bounds, options={"maxiter": maxiter})
            if np.isfinite(res.fun) and res.fun < best_val:
                best_val, best = float(res.fun), res.x
        return best

    # -- the posterior ------------------------------------------------------------------------
    def condition(self, theta: np.ndarray, f: np.ndarray, y: np.ndarray) -> GP:
        """Set the hyperparameters and the training data (features, standardised targets)."""
        g = self.g
        self.theta = np.asarray(theta, dtype=float)
        self.w = np.exp(-2.0 * self.theta[:g])
        self.amp = math.exp(self.theta[g])
        self.noise = math.exp(self.theta[g + 1]) + _JITTER
        self.scale = np.sqrt(self.w[self.enc.col_group])  # per feature column
        self.f, self.y = f, y
        self.z = f * self.scale
        self.zz = np.sum(self.z * self.z, axis=1)
        kf, _ = matern52(self._r2(self.z), self.amp)
        k = kf.copy()
        k[np.diag_indices(len(y))] += self.noise
        c = chol_robust(k)
        self.alpha = chol_solve(c, y)
        self.kinv = chol_inv(c)
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
        wc = self.w[self.enc.col_group[cont]]
        xc, tc = f[:, cont], self.f[:, cont]
        gm = dk * self.alpha[None, :]  # (m, n)
        gv = dk * v
        # d r2 / d x_c = 2 w_c (x_c - t_c)
        dmean = 2.0 * wc * (xc * gm.sum(axis=1)[:, None] - gm @ tc)
        dvar = -4.0 * wc * (xc * gv.sum(axis=1)[:, None] - gv @ tc)
        return mean, var, dmean, dvar


# -- log expected improvement ----------------------------------------------------------------------
_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2.0)
_INV_SQRT_EPS = 1.0 / math.sqrt(np.finfo(float).eps)


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x < 0``, accurately on both sides of ``-log 2``."""
    out = np.empty_like(x)
    near = x > -math.log(2.0)
    out[near] = np.log(-np.expm1(x[near]))
    out[~near] = np.log1p(-np.exp(x[~near]))
    return out


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z Phi(z))``, stable for very negative ``z`` (Ament et al. 2023, eq. 9)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    a = z > -1.0
    za = z[a]
    out[a] = np.log(np.exp(-0.5 * za * za - _C1) + za * ndtr(za))
    b = ~a & (z > -_INV_SQRT_EPS)
    zb = z[b]
    out[b] = -0.5 * zb * zb - _C1 + _log1mexp(np.log(erfcx(-zb / math.sqrt(2.0)) * np.abs(zb)) + _C2)
    c = ~a & ~b
    zc = z[c]
    out[c] = -0.5 * zc * zc - _C1 - 2.0 * np.log(np.abs(zc))
    return out


def log_ei(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f, 0)] for f ~ N(mean, var) (minimisation)."""
    sd = np.sqrt(var)
    return np.log(sd) + log_h((best - mean) / sd)


def log_ei_grad(mean: np.ndarray, var: np.ndarray, dmean: np.ndarray, dvar: np.ndarray,
                best: float) -> tuple[np.ndarray, np.ndarray]:
    """log EI and its gradient, given the gradients of the mean and the variance."""
    sd = np.sqrt(var)
    z = (best - mean) / sd
    lh = log_h(z)
    dlh = np.exp(log_ndtr(z) - lh)  # d log h / dz = Phi(z) / h(z)
    dsd = dvar / (2.0 * sd[:, None])
    dz = (-dmean - z[:, None] * dsd) / sd[:, None]
    return np.log(sd) + lh, dsd / sd[:, None] + dlh[:, None] * dz


def log_prob_below(mean: np.ndarray, var: np.ndarray, bound: float) -> np.ndarray:
    """log P(f <= bound) for f ~ N(mean, var)."""
    return log_ndtr((bound - mean) / np.sqrt(var))


def log_prob_below_grad(mean: np.ndarray, var: np.ndarray, dmean: np.ndarray, dvar: np.ndarray,
                        bound: float) -> tuple[np.ndarray, np.ndarray]:
    sd = np.sqrt(var)
    t = (bound - mean) / sd
    lp = log_ndtr(t)
    ratio = np.exp(-0.5 * t * t - _C1 - lp)  # phi(t) / Phi(t)
    dsd = dvar / (2.0 * sd[:, None])
    dt = (-dmean - t[:, None] * dsd) / sd[:, None]
    return lp, ratio[:, None] * dt
