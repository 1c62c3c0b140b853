"""Cost reports: where a study's money went, what is left, what early stopping saved, and what
finishing will cost.

:func:`cost_report` reads a study once and returns a :class:`CostReport`: immutable records whose
:meth:`~CostReport.to_dict` is plain JSON (``thrifty report --json``). :func:`forecast_trials`
predicts the cost of a number of new trials from a fitted cost model (``thrifty estimate``).

Units, everywhere in this module: money in US dollars (fields ending in ``_usd``), durations in
seconds (``_s``), GPU time in GPU-hours (``gpu_hours``), timestamps in seconds since the Unix
epoch (``_at``). Every trial's cost is counted, whatever its state: the spend of failed,
infeasible and stopped trials is money spent, and it is shown, never hidden.

Resource use (CPU percent of one core, MB of resident memory, GPU utilisation: :mod:`thrifty.usage`)
is what the runners recorded per trial; the report lists the trials whose GPU sat idle
(:attr:`~thrifty.usage.ResourceUsage.gpu_idle`: at least half of their GPU readings below 5%
utilisation) with the dollars they cost, since idle paid hardware is the first thing to cut.

A pipeline study's report has a memo cache section (:class:`MemoCacheSummary`): cache hits and
misses, the dollars and seconds reading cached stage outputs saved, overall and per stage, summed
from the stage records each trial stores (:class:`~thrifty.storage.base.StageRun`).

Two numbers are *estimates* from the study's cost model (:mod:`thrifty.cost.forecast`), not
ledger entries: the dollars saved by early stopping and the forecast to finish. Each carries a
``note`` saying how it was made, or why it is 0 / missing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from thrifty.cost.budget import Budget, BudgetGuard, BudgetStop, Moment, Usage
from thrifty.errors import ValidationError
from thrifty.ranking import full_resource, rank, ranked_fronts
from thrifty.trial import Trial, TrialState
from thrifty.usage import ResourceUsage

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.cost.forecast import CostModel
    from thrifty.space import Space
    from thrifty.study import Study

#: Random configurations drawn from the space to average the cost of "a new trial".
N_RANDOM_CONFIGS = 256
#: The states a report breaks the spend down by, in this order ("stopped" is "stopped early").
REPORT_STATES = (TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED, TrialState.INFEASIBLE,
                 TrialState.RUNNING)

_LIMIT_ORDER = ("trials", "usd", "gpu_hours", "wall_s")


# -- JSON -------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    """Plain JSON values: dataclasses and mappings become dicts, tuples lists, and non-finite
    floats strings (``"nan"``, ``"inf"``), so ``json.loads(json.dumps(x)) == x``."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, (TrialState,)):
        return obj.value
    return obj


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-compatible values (dicts, lists, numbers, strings, None)."""
        return _jsonable(self)


def _frozen_map(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


# -- records ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=True)
class TrialCost(_ToDict):
    """One line of the ledger: what one trial cost.

    ``cost_usd``: dollars (metered compute plus reported costs); ``elapsed_s``: seconds the trial
    ran; ``gpu_hours``: GPU-hours it held; ``last_step``: the largest step (resource) it reported,
    ``None`` if it reported none; ``note``: why a stopped trial stopped, or the gist of a failed or
    infeasible trial's error (its first line, or the last line of a Python traceback);
    ``usage``: what its processes used (:class:`~thrifty.usage.ResourceUsage`; ``None``: nothing
    recorded); ``gpu_idle``: its GPU sat idle (:attr:`~thrifty.usage.ResourceUsage.gpu_idle`).
    """

    number: int
    state: str
    cost_usd: float
    elapsed_s: float
    gpu_hours: float
    resources: Mapping[str, float]
    last_step: float | None
    note: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    retried: bool = False
    usage: ResourceUsage | None = None
    gpu_idle: bool = False


@dataclass(frozen=True)
class StateSpend(_ToDict):
    """The spend of the trials in one state: ``trials`` (count), ``cost_usd`` (dollars),
    ``elapsed_s`` (seconds, summed over trials) and ``gpu_hours``."""

    state: str
    trials: int
    cost_usd: float
    elapsed_s: float
    gpu_hours: float


@dataclass(frozen=True)
class LimitStatus(_ToDict):
    """One budget limit: ``limit`` is its name (``trials``, ``usd`` in dollars, ``gpu_hours``,
    ``wall_s`` in seconds of active wall time), ``value`` the limit, ``used`` what the study has
    consumed and ``left`` what remains (never below 0), in the limit's unit."""

    limit: str
    value: float | int
    used: float | int
    left: float | int


@dataclass(frozen=True)
class BudgetStatus(_ToDict):
    """The study's budget and what is left of each limit set (``limits``; empty: no budget).

    If the circuit breaker of a hard budget tripped (running trials were told to stop),
    ``breaker_tripped`` is true, ``breaker_limit`` names the limit (``usd``, ``gpu_hours`` or
    ``wall_s``, as the study recorded it), ``breaker_message`` is the reason the stopped trials
    record and ``breaker_at`` when it tripped (seconds since the epoch). ``exhausted``: the
    limit, in words, that keeps new trials from starting now (``None``: none does)."""

    hard: bool
    limits: tuple[LimitStatus, ...]
    exhausted: str | None = None
    breaker_tripped: bool = False
    breaker_limit: str | None = None
    breaker_message: str | None = None
    breaker_at: float | None = None


@dataclass(frozen=True)
class EarlyStopSavings(_ToDict):
    """An *estimate* of the dollars early stopping saved.

    For each STOPPED trial: the cost model's forecast of running it to ``full_resource`` (the
    largest step any completed trial reached) minus what it actually cost, at least 0. ``usd`` sums
    the forecast means; ``low_usd``/``high_usd`` sum the ends of each forecast's 90% interval
    (so the range is wider than a 90% interval of the sum). ``note`` says how it was made or why
    it is 0.
    """

    usd: float
    low_usd: float
    high_usd: float
    stopped_trials: int
    stopped_cost_usd: float
    full_resource: float | None
    note: str
    estimate: bool = True


@dataclass(frozen=True)
class FinishForecast(_ToDict):
    """An *estimate* of the dollars the study's remaining trials will cost.

    Only with a trial limit: ``remaining_trials`` (the limit minus trials started) times
    ``per_trial_usd`` (the cost model's mean forecast over random configurations at the full
    resource, or the mean cost of the finished trials if the model is not fitted) is
    ``uncapped_usd``; ``usd`` is that, capped by the dollars left of a dollar budget
    (``capped`` says whether the cap applied). ``None`` fields: no forecast (see ``note``).
    """

    remaining_trials: int | None
    per_trial_usd: float | None
    usd: float | None
    uncapped_usd: float | None
    capped: bool
    basis: str | None
    note: str
    estimate: bool = True


@dataclass(frozen=True)
class BestSoFar(_ToDict):
    """The best COMPLETED trial so far: its ``number``, objective ``metric`` and ``value``, the
    ``direction`` (``min``/``max``), its ``params`` and what it cost (``cost_usd``, dollars)."""

    number: int
    metric: str
    value: float
    direction: str
    params: Mapping[str, Any]
    cost_usd: float


@dataclass(frozen=True)
class StageCacheSummary(_ToDict):
    """One pipeline stage over the study's trials: ``runs`` (computed), ``hits`` (read from the
    memo cache), ``misses`` (computed although cacheable), ``skipped`` (a later stage was read),
    ``cost_usd`` (what the trials paid for it), ``saved_usd`` / ``saved_s`` (by its hits)."""

    stage: int
    name: str
    runs: int
    hits: int
    misses: int
    skipped: int
    cost_usd: float
    saved_usd: float
    saved_s: float


@dataclass(frozen=True)
class MemoCacheSummary(_ToDict):
    """A pipeline study's memo cache: ``hits`` (trials that read a cached prefix), ``misses``
    (cacheable stages computed), ``saved_usd`` / ``saved_s`` (what computing the prefixes read
    would have cost, less the reads), and each stage's numbers."""

    hits: int
    misses: int
    saved_usd: float
    saved_s: float
    stages: tuple[StageCacheSummary, ...]


def memo_cache_summary(study: Study) -> MemoCacheSummary | None:
    """The memo cache section of a pipeline study's report, ``None`` for other studies."""
    shape = study.settings.pipeline
    if shape is None:
        return None
    runs = study.storage.stage_runs(study.id)
    stages = []
    for i, st in enumerate(shape.stages):
        mine = [r for r in runs if r.stage == i]
        stages.append(StageCacheSummary(
            stage=i, name=st.name, runs=sum(r.outcome == "run" for r in mine), hits=sum(r.outcome == "hit" for r in mine),
            misses=sum(r.miss for r in mine), skipped=sum(r.outcome == "skipped" for r in mine),
            cost_usd=math.fsum(r.cost_usd for r in mine), saved_usd=math.fsum(r.saved_usd for r in mine),
            saved_s=math.fsum(r.saved_s for r in mine)))
    return MemoCacheSummary(hits=sum(s.hits for s in stages), misses=sum(s.misses for s in stages),
                            saved_usd=math.fsum(s.saved_usd for s in stages),
                            saved_s=math.fsum(s.saved_s for s in stages), stages=tuple(stages))


@dataclass(frozen=True)
class CostReport(_ToDict):
    """Where a study's money went (see the module docstring for the units).

    ``spent_usd``: dollars in the study's ledger, every trial and state included;
    ``by_state``: the spend broken down by trial state; ``gpu_hours``: GPU-hours held;
    ``wall_s``: seconds during which at least one trial ran; ``trials_started``: trials started
    (a retry of a trial whose worker died counts once); ``trials``: the per-trial ledger in number
    order (see :meth:`most_expensive`).
    """

    study: str
    storage: str
    generated_at: float
    objectives: Mapping[str, str]
    spent_usd: float
    by_state: tuple[StateSpend, ...]
    gpu_hours: float
    wall_s: float
    trials_started: int
    trials_total: int
    budget: BudgetStatus
    saved_by_early_stopping: EarlyStopSavings
    forecast_to_finish: FinishForecast
    best: BestSoFar | None
    trials: tuple[TrialCost, ...]
    notes: tuple[str, ...] = ()
    #: Completed trials whose configuration is a near-duplicate (:data:`thrifty.encoding.NEAR`:
    #: every parameter within 1% of its range, the same choices) of an earlier completed trial's,
    #: and the dollars they cost: on a deterministic objective, money paid twice for one answer.
    near_duplicate_full_trainings: int = 0
    near_duplicate_usd: float = 0.0
    #: The trials (numbers, in order) that held a GPU which sat idle
    #: (:attr:`~thrifty.usage.ResourceUsage.gpu_idle`), and the dollars they cost.
    idle_gpu_trials: tuple[int, ...] = ()
    idle_gpu_usd: float = 0.0
    #: A pipeline study's memo cache (hits, misses, dollars saved), else ``None``.
    memo_cache: MemoCacheSummary | None = None

    def most_expensive(self, n: int | None = None) -> list[TrialCost]:
        """The ledger sorted by cost, most expensive first (ties: lower number first)."""
        ranked = sorted(self.trials, key=lambda t: (-t.cost_usd, t.number))
        return ranked if n is None else ranked[:n]

    def spend(self, state: str | TrialState) -> StateSpend:
        """The spend of one state (``"completed"``, ``"stopped"``, ...)."""
        key = TrialState.parse(state).value
        for s in self.by_state:
            if s.state == key:
                return s
        return StateSpend(key, 0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class TrialsForecast(_ToDict):
    """The forecast cost of ``n_trials`` new trials run to ``resource``, in dollars.

    ``mean_usd``: the expected total (``n_trials`` times ``per_trial_usd``, the cost model's mean
    forecast averaged over random configurations); ``low_usd``/``high_usd``: a 90% interval of
    the total by Monte Carlo over the configurations and their lognormal forecasts.
    """

    n_trials: int
    resource: float
    per_trial_usd: float
    mean_usd: float
    low_usd: float
    high_usd: float
    n_configs: int
    method: str


# -- helpers ----------------------------------------------------------------------------------
def error_gist(text: str | None) -> str | None:
    """One line of an error text: the last line of a Python traceback (where the exception is
    named), else the first non-empty line."""
    if not text:
        return None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    if lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1]
    return lines[0]


def random_configs(space: Space, n: int = N_RANDOM_CONFIGS, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` configurations drawn uniformly (log-uniformly where the space says log) from the
    space, reproducibly for a given ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [space.decode(rng.random(space.n_dims)) for _ in range(n)]


def _budget_status(budget: Budget, usage: Usage, stop: BudgetStop | None) -> BudgetStatus:
    limits = []
    used_of = {"usd": usage.usd, "gpu_hours": usage.gpu_hours, "wall_s": usage.wall_s}
    for name in _LIMIT_ORDER:
        value = getattr(budget, name)
        if value is None:
            continue
        if name == "trials":  # whole numbers stay whole
            limits.append(LimitStatus(limit=name, value=value, used=usage.trials, left=max(value - usage.trials, 0)))
            continue
        used = used_of[name]
        limits.append(LimitStatus(limit=name, value=float(value), used=used, left=max(float(value) - used, 0.0)))
    hit = BudgetGuard(budget).check(usage, Moment.START)
    return BudgetStatus(
        hard=budget.hard,
        limits=tuple(limits),
        exhausted=hit.message if hit else None,
        breaker_tripped=stop is not None,
        breaker_limit=stop.limit if stop is not None else None,
        breaker_message=stop.reason if stop is not None else None,
        breaker_at=stop.at if stop is not None else None,
    )


def fit_cost_model(study: Study, trials: Sequence[Trial] | None = None) -> CostModel:
    """A cost model fitted on the study's finished trials (``trials``: already read; ``None``: read
    them), on the last 100 of them as the study's own."""
    from thrifty.cost.forecast import CostModel

    trials = study.trials if trials is None else trials
    # The last 100 finished trials, as the study's own model (thrifty.study's MODEL_TRIALS): a fit
    # stays well under a second however long the study.
    return CostModel(study.space, max_trials=100).fit([t for t in trials if t.state.is_finished])


def _fit(study: Study, trials: Sequence[Trial]) -> tuple[CostModel | None, str | None]:
    """The study's cost model if it is fitted, else ``(None, why not)``."""
    try:
        model = fit_cost_model(study, trials)
        fitted = model.is_fitted
    except Exception as exc:  # noqa: BLE001 - a report must not fail on an estimate
        return None, f"the cost model could not be fitted ({exc})"
    if not fitted:
        return None, "the cost model is not fitted yet (too few finished trials with costs)"
    return model, None


def _savings(model: CostModel | None, why_not: str | None, trials: Sequence[Trial],
             full: float | None) -> EarlyStopSavings:
    stopped = [t for t in trials if t.state is TrialState.STOPPED]
    actual = math.fsum(t.cost_usd for t in stopped)

    def zero(note: str) -> EarlyStopSavings:
        return EarlyStopSavings(0.0, 0.0, 0.0, len(stopped), actual, full, note)

    if not stopped:
        return zero("no trial was stopped early")
    if full is None:
        return zero("no completed trial reported a step, so the full resource of a trial is unknown")
    if model is None:
        return zero(why_not or "the cost model is not fitted")
    import numpy as np

    # One batched forecast (a trial at a time took seconds at a thousand stopped trials); the
    # log-normal's mean and 90% ends, as CostModel.predict gives them.
    mu, sd = model.predict_log([dict(t.params) for t in stopped], full)
    spent = np.array([t.cost_usd for t in stopped])
    usd = float(np.sum(np.maximum(np.exp(mu + sd**2 / 2) - spent, 0.0)))
    low = float(np.sum(np.maximum(np.exp(mu - 1.645 * sd) - spent, 0.0)))
    high = float(np.sum(np.maximum(np.exp(mu + 1.645 * sd) - spent, 0.0)))
    n = len(stopped)
    return EarlyStopSavings(
        usd=usd, low_usd=low, high_usd=high, stopped_trials=n, stopped_cost_usd=actual, full_resource=full,
        note=(f"estimate: the cost model's forecast of running the {n} stopped trial{'s' if n != 1 else ''} "
              f"to step {full:g} (the largest step of a completed trial), minus what they cost; "
              "the range sums each forecast's 90% interval"),
    )


def _forecast(study: Study, model: CostModel | None, trials: Sequence[Trial], budget: Budget, usage: Usage,
              full: float | None) -> FinishForecast:
    if budget.trials is None:
        return FinishForecast(None, None, None, None, False, None, "the budget has no trial limit to finish")
    remaining = max(budget.trials - usage.trials, 0)
    per_trial: float | None = None
    basis: str | None = None
    resource = full if full is not None else 1.0
    try:
        if model is not None:
            per_trial = float(model.expected_cost(random_configs(study.space, N_RANDOM_CONFIGS, study.seed), resource))
            basis = (f"cost model: mean forecast over {N_RANDOM_CONFIGS} random configurations "
                     f"at step {resource:g}")
    except Exception:  # noqa: BLE001 - fall back to the mean cost below
        per_trial = None
    if per_trial is None:
        finished = [t for t in trials if t.state.is_finished]
        if not finished:
            if remaining == 0:
                return FinishForecast(0, None, 0.0, 0.0, False, None, "no trials are left to run")
            return FinishForecast(remaining, None, None, None, False, None,
                                  "no trial has finished yet, so there is nothing to forecast from")
        per_trial = math.fsum(t.cost_usd for t in finished) / len(finished)
        plural = "s" if len(finished) != 1 else ""
        basis = f"mean cost of the {len(finished)} finished trial{plural} (cost model not fitted)"
    uncapped = remaining * per_trial
    usd, capped = uncapped, False
    left = budget.remaining_usd(usage)
    if left is not None and uncapped > left:
        usd, capped = left, True
    note = (f"estimate: {remaining} trial{'s' if remaining != 1 else ''} left of the {budget.trials}-trial budget "
            f"x ${per_trial:,.4f} per trial")
    if capped:
        note += f", capped by the ${left:,.4f} left of the ${budget.usd:,.2f} budget"
    return FinishForecast(remaining, per_trial, usd, uncapped, capped, basis, note)


def _best(study: Study, trials: Sequence[Trial]) -> tuple[BestSoFar | None, str | None]:
    """The best trial among ``trials`` (the study's, as read for the report) by the study's rule
    (:func:`thrifty.ranking.rank`), or the Pareto front's size for several objectives."""
    if study.is_multi_objective:
        front = next(iter(ranked_fronts(trials, study.objectives, study.constraints)), [])
        return None, f"multi-objective study: {len(front)} trials on the Pareto front (thrifty best {study.name})"
    ranked = rank(trials, study.objectives, study.constraints)
    if not ranked:
        return None, None
    b = ranked[0]
    metric, direction = next(iter(study.objectives.items()))
    value = b.metrics.get(metric, math.nan)
    return BestSoFar(b.number, metric, float(value), direction, _frozen_map(b.params), b.cost_usd), None


# -- the report -------------------------------------------------------------------------------
def cost_report(study: Study, *, trials: Sequence[Trial] | None = None) -> CostReport:
    """Read the study and report where its money went (see :class:`CostReport`).

    Amounts are in dollars, durations in seconds, GPU time in GPU-hours. The savings from early
    stopping and the forecast to finish are estimates from the study's cost model; the rest
    comes from the ledger. ``trials``: the study's trials if already read (default: read them).
    """
    now = time.time()
    record = study.storage.load_study(study.name)
    usage = record.usage(now)
    budget = Budget.from_dict(record.budget)
    trials = study.trials if trials is None else list(trials)
    ledger = tuple(
        TrialCost(
            number=t.number,
            state=t.state.value,
            cost_usd=t.cost_usd,
            elapsed_s=t.elapsed_s,
            gpu_hours=t.gpu_s / 3600.0,
            resources=_frozen_map(t.resources),
            last_step=t.last_step,
            note=t.reason if t.state is TrialState.STOPPED else error_gist(t.error),
            params=_frozen_map(t.params),
            retried=t.retried,
            usage=t.usage,
            gpu_idle=t.usage is not None and t.usage.gpu_idle,
        )
        for t in trials
    )
    idle = [t for t in ledger if t.gpu_idle]
    states = list(REPORT_STATES)
    for extra in (TrialState.PAUSED, TrialState.PENDING):  # listed when there are any
        if any(t.state is extra for t in trials):
            states.append(extra)
    by_state = tuple(
        StateSpend(
            state=s.value,
            trials=sum(1 for t in trials if t.state is s),
            cost_usd=math.fsum(t.cost_usd for t in trials if t.state is s),
            elapsed_s=math.fsum(t.elapsed_s for t in trials if t.state is s),
            gpu_hours=math.fsum(t.gpu_s for t in trials if t.state is s) / 3600.0,
        )
        for s in states
    )
    notes: list[str] = []
    attributed = math.fsum(t.cost_usd for t in trials)
    if abs(attributed - usage.usd) > 1e-9 * max(1.0, usage.usd):
        notes.append(f"the trials add up to ${attributed:,.6f} but the study's ledger holds ${usage.usd:,.6f}")
    full = full_resource(trials)
    twice, twice_usd = near_duplicate_completions(study.space, trials)
    model, why_not = _fit(study, trials)
    best, best_note = _best(study, trials)
    if best_note:
        notes.append(best_note)
    return CostReport(
        study=study.name,
        storage=study.storage_url,
        generated_at=now,
        objectives=_frozen_map(study.objectives),
        spent_usd=usage.usd,
        by_state=by_state,
        gpu_hours=usage.gpu_hours,
        wall_s=usage.wall_s,
        trials_started=usage.trials,
        trials_total=len(trials),
        budget=_budget_status(budget, usage, record.budget_stop),
        saved_by_early_stopping=_savings(model, why_not, trials, full),
        forecast_to_finish=_forecast(study, model, trials, budget, usage, full),
        best=best,
        trials=ledger,
        notes=tuple(notes),
        near_duplicate_full_trainings=twice,
        near_duplicate_usd=twice_usd,
        idle_gpu_trials=tuple(t.number for t in idle),
        idle_gpu_usd=math.fsum(t.cost_usd for t in idle),
        memo_cache=memo_cache_summary(study),
    )


def near_duplicate_completions(space: Space, trials: Sequence[Trial]) -> tuple[int, float]:
    """(how many completed trials, in number order, are near-duplicates of an earlier completed
    trial, and the dollars they cost)."""
    import numpy as np

    from thrifty.encoding import NEAR, encoder_of

    done = [t for t in trials if t.state is TrialState.COMPLETED]
    if len(done) < 2 or space.n_dims == 0:
        return 0, 0.0
    from scipy.spatial import cKDTree

    enc = encoder_of(space)
    x = enc.snap(enc.encode([t.params for t in done]))
    # Encoder.near_duplicates' rule as one Chebyshev-distance search (pairs within NEAR), so it
    # scales to 100,000 trials: an inactive column sits far below the cube, a categorical column is
    # stretched so that two different choices are far apart and the same choice is 0 apart.
    far = np.where(np.isnan(x), -10.0, x)
    far[:, enc.categorical] *= 1e6
    later = {j for _, j in cKDTree(far).query_pairs(r=NEAR + 1e-12, p=np.inf)}
    return len(later), float(sum(done[j].cost_usd for j in later))


# -- forecasting new trials -------------------------------------------------------------------
#: Monte Carlo draws of the total; above ``_MC_MAX_TRIALS`` trials a normal approximation is used.
_MC_DRAWS = 4000
_MC_MAX_TRIALS = 2000


def forecast_trials(
    model: CostModel, space: Space, n_trials: int, resource: float, *, n_configs: int = N_RANDOM_CONFIGS,
    seed: int = 0,
) -> TrialsForecast:
    """The cost of ``n_trials`` new trials of random configurations run to ``resource``.

    ``per_trial_usd`` is ``model.expected_cost`` over ``n_configs`` random configurations; the
    expected total is ``n_trials`` times that. The 90% interval (5th to 95th percentile, dollars)
    comes from Monte Carlo over :meth:`~thrifty.cost.forecast.CostModel.sample_log`'s joint draws:
    each draw is one plausible cost function (the model's uncertainty shared by all trials, plus
    each trial's own noise); the total picks ``n_trials`` configurations from the pool and sums
    their costs under it. Above 2000 trials the picking is replaced by its normal approximation.
    """
    import numpy as np

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValidationError(f"n_trials={n_trials!r}: expected an integer >= 1")
    configs = random_configs(space, n_configs, seed)
    per_trial = float(model.expected_cost(configs, resource))
    rng = np.random.default_rng(seed + 1)
    costs = np.exp(model.sample_log(configs, resource, _MC_DRAWS, rng))  # (draws, configs)
    if n_trials <= _MC_MAX_TRIALS:
        totals = np.empty(_MC_DRAWS)
        chunk = max(1, 2_000_000 // n_trials)
        for start in range(0, _MC_DRAWS, chunk):
            m = min(chunk, _MC_DRAWS - start)
            idx = rng.integers(0, len(configs), size=(m, n_trials))
            totals[start:start + m] = np.take_along_axis(costs[start:start + m], idx, axis=1).sum(axis=1)
        method = f"Monte Carlo, {_MC_DRAWS} joint draws"
    else:
        centre = n_trials * costs.mean(axis=1)
        spread = np.sqrt(n_trials * costs.var(axis=1))
        totals = np.maximum(centre + spread * rng.standard_normal(_MC_DRAWS), 0.0)
        method = f"Monte Carlo, {_MC_DRAWS} joint draws, normal approximation of the picking"
    low, high = (float(v) for v in np.percentile(totals, [5.0, 95.0]))
    return TrialsForecast(
        n_trials=n_trials, resource=float(resource), per_trial_usd=per_trial, mean_usd=n_trials * per_trial,
        low_usd=low, high_usd=high, n_configs=len(configs), method=method,
    )


__all__ = [
    "BestSoFar",
    "BudgetStatus",
    "CostReport",
    "EarlyStopSavings",
    "FinishForecast",
    "LimitStatus",
    "StateSpend",
    "TrialCost",
    "TrialsForecast",
    "cost_report",
    "error_gist",
    "fit_cost_model",
    "forecast_trials",
    "full_resource",
    "random_configs",
]
