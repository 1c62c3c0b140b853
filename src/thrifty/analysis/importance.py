"""Which parameters matter: functional ANOVA (fANOVA, Hutter, Hoos & Leyton-Brown 2014) on a
random forest fitted to the study's completed trials.

The rule. Each parameter is one column: a numeric parameter at its unit position (log-scaled
where the space says log), a categorical one at its choice's index. The forest (scikit-learn's
``RandomForestRegressor``, each tree on a bootstrap resample) predicts the objective. Under a
reference measure on the inputs (each column independent: uniform over a numeric range, equal
mass per choice; a conditional parameter's "inactive" is one more point, with the share of trials
where it was inactive) each tree's prediction has a variance ``V``; the *main effect* of a
parameter is the tree's prediction averaged over all the other columns, as a function of that
parameter alone, and its variance ``V_j`` is the share of ``V`` that parameter explains by itself.
Reported per parameter: ``V_j / V`` averaged over the trees (``fraction``), and its standard
deviation over the trees (``fraction_sd``: the spread over bootstrap refits). The fractions need
not add up to 1: what is left is explained by interactions.

Computed exactly from each tree's leaves (boxes of the input space), not by sampling.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import NotEnoughData, ValidationError
from thrifty.ranking import chosen_objective, eligible
from thrifty.space import Categorical, Fixed, Space

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial

#: Code of an inactive conditional parameter (below every active position, which are >= 0).
INACTIVE = -1.0
MIN_TRIALS = 8
#: At most this many trials are fitted (a seeded sample beyond it).
MAX_TRIALS = 2000


@dataclass(frozen=True)
class Importance:
    """One parameter's share of the objective's variance explained by itself (``fraction``, 0-1)
    and its standard deviation over the forest's trees (``fraction_sd``)."""

    param: str
    fraction: float
    fraction_sd: float


@dataclass(frozen=True)
class ImportanceReport:
    """Importance of every parameter, most important first, for ``objective`` over ``n_trials``
    completed trials; ``interactions`` is what the main effects leave unexplained (1 minus their
    sum, at least 0)."""

    objective: str
    n_trials: int
    importances: tuple[Importance, ...]
    interactions: float
    n_trees: int
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "n_trials": self.n_trials, "n_trees": self.n_trees,
                "interactions": self.interactions, "notes": list(self.notes),
                "importances": [{"param": i.param, "fraction": i.fraction, "fraction_sd": i.fraction_sd}
                                for i in self.importances]}


@dataclass(frozen=True)
class _Measure:
    """The reference measure of one column: point masses ``atoms`` (position -> mass) and the
    rest, ``1 - sum(atoms)``, uniform on ``[0, 1]`` (``continuous``)."""

    atoms: dict[float, float]
    continuous: bool

    def mass(self, lo: float, hi: float) -> float:
        """Mass of the interval ``[lo, hi)``."""
        m = sum(w for a, w in self.atoms.items() if lo <= a < hi)
        if self.continuous:
            rest = 1.0 - sum(self.atoms.values())
            m += rest * max(0.0, min(hi, 1.0) - max(lo, 0.0))
        return m

    def cuts(self, thresholds: Sequence[float]) -> list[tuple[float, float, float]]:
        """The column split into pieces at ``thresholds`` and around each atom: (lo, hi, mass)
        with positive mass, on which a tree's main effect is constant."""
        edges = sorted({-math.inf, math.inf, *thresholds, *self.atoms, *(np.nextafter(a, math.inf) for a in self.atoms)})
        out = []
        for lo, hi in itertools.pairwise(edges):
            m = self.mass(lo, hi)
            if m > 1e-15:
                out.append((lo, hi, m))
        return out


def _columns(space: Space, trials: Sequence[Trial]) -> tuple[list[str], np.ndarray, list[_Measure]]:
    names = [n for n, p in space.items() if not isinstance(p, Fixed)]
    x = np.empty((len(trials), len(names)))
    measures = []
    for j, name in enumerate(names):
        p = space[name]
        col = []
        for t in trials:
            v = t.params.get(name)
            if v is None:
                col.append(INACTIVE)
            elif isinstance(p, Categorical):
                col.append(float(p.index(v)))
            else:
                col.append(float(p.to_unit(v)))
        x[:, j] = col
        inactive = float(np.mean(x[:, j] == INACTIVE))
        if isinstance(p, Categorical):
            k = len(p.choices)
            atoms = {float(i): (1.0 - inactive) / k for i in range(k)}
            continuous = False
        else:
            atoms, continuous = {}, True
        if inactive > 0:
            atoms[INACTIVE] = inactive
        measures.append(_Measure(atoms, continuous))
    return names, x, measures


def _tree_fractions(tree: Any, measures: list[_Measure]) -> np.ndarray | None:
    """``V_j / V`` of one fitted sklearn tree for every column, or ``None`` if it is constant."""
    t = tree.tree_
    d = len(measures)
    leaves: list[tuple[np.ndarray, np.ndarray, float]] = []
    stack = [(0, np.full(d, -math.inf), np.full(d, math.inf))]
    thresholds: list[list[float]] = [[] for _ in range(d)]
    while stack:
        node, lo, hi = stack.pop()
        f = t.feature[node]
        if f < 0:
            leaves.append((lo, hi, float(t.value[node].ravel()[0])))
            continue
        thr = float(t.threshold[node])  # left: x <= thr, i.e. x < nextafter(thr)
        cut = float(np.nextafter(thr, math.inf))
        thresholds[f].append(cut)
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[f] = min(hi[f], cut)
        right_lo[f] = max(lo[f], cut)
        stack.append((int(t.children_left[node]), lo, left_hi))
        stack.append((int(t.children_right[node]), right_lo, hi))
    lows = np.array([lo for lo, _, _ in leaves])
    highs = np.array([hi for _, hi, _ in leaves])
    values = np.array([v for _, _, v in leaves])
    masses = np.array([[measures[j].mass(lo[j], hi[j]) for j in range(d)] for lo, hi, _ in leaves])
    vol = masses.prod(axis=1)
    mean = float(vol @ values)
    total = float(vol @ (values - mean) ** 2)
    if total <= 1e-15 * max(1.0, mean * mean):
        return None
    out = np.zeros(d)
    for j in range(d):
        if not thresholds[j]:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            others = np.where(masses[:, j] > 0, vol / masses[:, j], 0.0)
        pieces = measures[j].cuts(thresholds[j])
        p_lo = np.array([a for a, _, _ in pieces])
        p_hi = np.array([b for _, b, _ in pieces])
        weight = np.array([w for _, _, w in pieces])
        # pieces x leaves: the leaf's interval on column j holds the piece
        inside = (lows[None, :, j] <= p_lo[:, None]) & (p_hi[:, None] <= highs[None, :, j])
        marginal = inside.astype(float) @ (others * values)
        out[j] = float(weight @ (marginal - mean) ** 2)
    return out / total


def param_importances(study: Study, *, objective: str | None = None, n_trees: int = 64, seed: int = 0,
                      trials: Sequence[Trial] | None = None) -> ImportanceReport:
    """fANOVA importance of each parameter for ``objective`` (default: the study's only one) over
    the study's counted trials (COMPLETED, constraints met, finite value); see the module doc.
    Needs at least ``MIN_TRIALS`` (8) such trials and scikit-learn; beyond ``MAX_TRIALS`` (2,000) a
    seeded sample of them is fitted. ``trials``: the study's trials if already read."""
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:  # pragma: no cover - scikit-learn comes with thrifty[demo] and the tests
        raise ValidationError("parameter importance needs scikit-learn: pip install scikit-learn") from None
    if isinstance(n_trees, bool) or not isinstance(n_trees, int) or n_trees < 1:
        raise ValidationError(f"n_trees={n_trees!r}: expected an integer >= 1")
    metric, _ = chosen_objective(study.objectives, objective, study.name)
    every = study.trials if trials is None else trials
    counted = [t for _, t in eligible(every, {metric: study.objectives[metric]}, study.constraints)]
    if len(counted) < MIN_TRIALS:
        raise NotEnoughData(f"parameter importance needs at least {MIN_TRIALS} completed trials with a finite "
                            f"{metric}; study {study.name!r} has {len(counted)}")
    n_counted = len(counted)
    if len(counted) > MAX_TRIALS:  # a seeded sample: the forest's cost grows with the trials
        pick = np.random.default_rng(seed).choice(len(counted), MAX_TRIALS, replace=False)
        counted = [counted[i] for i in sorted(pick)]
        notes = [f"fitted on a seeded sample of {MAX_TRIALS} of the completed trials"]
    else:
        notes = []
    names, x, measures = _columns(study.space, counted)
    y = np.array([float(t.metrics[metric]) for t in counted])
    forest = RandomForestRegressor(n_estimators=n_trees, min_samples_leaf=1, max_features=None, bootstrap=True,
                                   random_state=seed, n_jobs=1).fit(x, y)
    per_tree = [f for f in (_tree_fractions(est, measures) for est in forest.estimators_) if f is not None]
    if not per_tree:
        fractions = sd = np.zeros(len(names))
        notes.append(f"every completed trial has the same {metric}: no parameter explains anything")
    else:
        stacked = np.vstack(per_tree)
        fractions, sd = stacked.mean(axis=0), stacked.std(axis=0)
    order = sorted(range(len(names)), key=lambda j: (-fractions[j], names[j]))
    items = tuple(Importance(names[j], float(fractions[j]), float(sd[j])) for j in order)
    return ImportanceReport(metric, n_counted, items, max(0.0, 1.0 - float(np.sum(fractions))), n_trees,
                            tuple(notes))
