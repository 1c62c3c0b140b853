"""The study's cost model, kept fitted between asks, and the soft budget admission it serves.

The model is refitted from an ask's snapshot, outside any transaction, when trials have finished
since the last fit (every new finished trial up to ``REFIT_EVERY_UP_TO``, then each time their number
has grown by ``REFIT_GROWTH``; on the last ``MODEL_TRIALS`` of them), whenever the stored
budget has a dollar limit or the strategy wants the model. The admission, part of the ask's
decision, refuses a proposal whose forecast median dollars exceed the dollars left in that
snapshot, and starts instead the affordable configuration nearest to it
(:meth:`CostGate.admit_or_cheaper`); the study ends only when nothing affordable is found.
Both read only the snapshot: no per-process state decides anything.

:mod:`thrifty.cost.forecast` (and scipy with it) is imported at the first fit, not with the study,
so ``import thrifty`` and every ``thrifty`` command that fits no model start fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from thrifty.cost.budget import Budget
from thrifty.encoding import encoder_of
from thrifty.errors import SpaceError, StudyExhausted
from thrifty.history import History
from thrifty.pipelines.cache import CachedPrefix, DiskCache, cached_prefixes
from thrifty.pipelines.guard import StageBounds
from thrifty.pipelines.run import stage_run_usd
from thrifty.pipelines.stage import PipelineShape
from thrifty.ranking import full_resource
from thrifty.space import Space
from thrifty.storage.base import Snapshot, StudyStatus
from thrifty.strategies import Strategy
from thrifty.strategies.base import Context
from thrifty.study._state import StudyState
from thrifty.trial import TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.cost.forecast import CostModel

log = logging.getLogger("thrifty.budget")

#: How many quasi-random configurations the admission searches for an affordable one.
CHEAPER_CANDIDATES = 512

#: The cost model is refitted after every finished trial up to this many, then each time the
#: finished trials have grown by ``REFIT_GROWTH``: a fit takes about 0.5 s at 50 trials, and after
#: every trial it was most of a budgeted 50-unit LCBench run's time (39 s against 6.5 s without
#: the budget).
REFIT_EVERY_UP_TO = 20
REFIT_GROWTH = 1.15
#: The model learns from the most recent this many finished trials with costs (the forecast's own
#: default is 200): measured on an LCBench study of the defaults, a fit on 150 finished trials took
#: 4 s with 200 and 0.2 s with 100, and the refits were half of a 50-unit run's time.
MODEL_TRIALS = 100

#: The trial states a cost model learns from.
FINISHED_STATES = [TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED, TrialState.INFEASIBLE]


class CostGate:
    """One study object's cached cost model and the admission of a new trial against the dollars
    left."""

    def __init__(self, state: StudyState) -> None:
        self._state = state
        self._model: tuple[int, CostModel, float] | None = None  #: (finished trials, model, full resource)

    def fit(self) -> CostModel:
        """A cost model fitted on the study's finished trials now (not cached)."""
        from thrifty.cost.forecast import CostModel  # scipy: loaded when a model is first fitted

        history = self._state.storage.get_trials(self._state.study_id, FINISHED_STATES)
        return CostModel(self._state.settings.space).fit(history)

    def refresh(self, snapshot: Snapshot, trials: History) -> None:
        """Refit the cached model on the snapshot's finished ``trials`` when trials have finished
        since the last fit (every new trial up to ``REFIT_EVERY_UP_TO``, then each time their
        number has grown by ``REFIT_GROWTH``)."""
        finished = trials.n_finished
        if self._model is not None:
            seen = self._model[0]
            if finished == seen or (seen >= REFIT_EVERY_UP_TO and finished < seen * REFIT_GROWTH):
                return
        from thrifty.cost.forecast import CostModel  # scipy: loaded when a model is first fitted

        done = [t for t in trials if t.is_finished]
        self._model = (finished, CostModel(self._state.settings.space, max_trials=MODEL_TRIALS).fit(done), full_resource(done) or 1.0)

    def admit(self, params: Mapping[str, Any], status: StudyStatus) -> None:
        """The soft budget check, from a snapshot's ``status``: refuse a trial whose forecast cost
        (the cost model's median dollars for these params at the full resource: as likely to be
        above as below) exceeds the dollars left."""
        forecast, left = self._forecast(params, status)
        if forecast is not None and forecast > left * (1 + 1e-9):
            budget = status.budget
            raise StudyExhausted(
                f"the next trial's forecast cost ${forecast:,.4f} exceeds the ${left:,.4f} left of the "
                f"${budget.usd:,.2f} budget (${status.spent_usd:,.4f} spent)",
                "usd",
            )

    def _forecast(self, params: Mapping[str, Any], status: StudyStatus,
                  strategy: Strategy | None = None) -> tuple[float | None, float]:
        """(forecast dollars of ``params``: the ``strategy``'s own forecast when it gives one
        (:meth:`~thrifty.strategies.base.Strategy.forecast_usd`), else the cost model's median at
        the full resource, or None without a dollar budget or a fitted model; dollars left)."""
        budget = status.budget
        if budget.usd is None:
            return None, 0.0
        own = strategy.forecast_usd(params) if strategy is not None else None
        if own is not None:
            return own, budget.usd - status.spent_usd
        if self._model is None or not self._model[1].is_fitted:
            return None, 0.0
        _, model, resource = self._model
        return model.predict(params, resource).median_usd, budget.usd - status.spent_usd

    def admit_or_cheaper(self, params: dict[str, Any], status: StudyStatus, space: Space, *, seed: int,
                         number: int, strategy: Strategy | None = None) -> dict[str, Any]:
        """``params`` if :meth:`admit` lets them start; else the affordable configuration nearest
        to them: among :data:`CHEAPER_CANDIDATES` quasi-random configurations (scrambled Sobol',
        seeded by the study's seed and the trial number, so every worker finds the same), those
        whose forecast fits in the dollars left, the one closest to ``params`` in the space's unit
        cube. A refused proposal does not end the study while something cheaper fits: only when
        none does is :class:`~thrifty.errors.StudyExhausted` raised, naming the cheapest. The
        proposing ``strategy``'s own forecast, when it gives one, decides whether ``params`` fit;
        the search for a cheaper one uses the study's model. A pipeline study under a hard dollar
        budget is admitted by :meth:`_admit_pipeline` instead."""
        shape = self._state.settings.pipeline
        if shape is not None and status.budget.usd is not None and status.budget.hard:
            return self._admit_pipeline(params, status, space, shape, strategy, number)
        forecast, left = self._forecast(params, status, strategy)
        if forecast is None or forecast <= left * (1 + 1e-9):
            return params
        if self._model is None or not self._model[1].is_fitted:
            return params  # only the strategy forecasts, and it found nothing cheaper
        import numpy as np
        from scipy.stats import qmc

        assert self._model is not None
        _, model, resource = self._model
        enc = encoder_of(space)
        engine = qmc.Sobol(d=max(space.n_dims, 1), scramble=True,
                           seed=np.random.default_rng([int(seed) & 0xFFFFFFFF, int(number), 0xC057]))
        u = enc.snap(engine.random(CHEAPER_CANDIDATES)[:, :space.n_dims])
        configs = enc.decode(u)
        median = np.exp(model.predict_log(configs, resource)[0])
        fits = np.flatnonzero(median <= left * (1 + 1e-9))
        budget = status.budget
        if not len(fits):
            raise StudyExhausted(
                f"the next trial's forecast cost ${forecast:,.4f} exceeds the ${left:,.4f} left of the "
                f"${budget.usd:,.2f} budget (${status.spent_usd:,.4f} spent), and so does every one of "
                f"{CHEAPER_CANDIDATES} other configurations (the cheapest: ${float(np.min(median)):,.4f})",
                "usd",
            )
        own = np.nan_to_num(enc.snap(enc.encode([params])), nan=0.5)
        dist = np.sum((np.nan_to_num(u[fits], nan=0.5) - own) ** 2, axis=1)
        pick = int(fits[int(np.argmin(dist))])
        log.info("admission: trial %d's proposal is forecast at $%.4f, more than the $%.4f left: the nearest "
                 "affordable configuration instead (forecast $%.4f)", number, forecast, left, float(median[pick]))
        return dict(configs[pick])

    def _admit_pipeline(self, params: dict[str, Any], status: StudyStatus, space: Space, shape: PipelineShape,
                        strategy: Strategy | None, number: int) -> dict[str, Any]:
        """The admission of a pipeline study under a hard dollar budget, with the bound its runs
        check before each stage (:mod:`thrifty.pipelines.guard`), so the two never disagree:
        ``params`` when their bound (reading their deepest cached prefix, running the rest), and
        the ``strategy``'s own forecast when it gives a larger one, fit in the dollars left; else
        the completion of a cached prefix (its parameters, ``params`` for the stages after it)
        whose bound fits, the nearest to ``params`` in the space's unit cube; else
        :class:`~thrifty.errors.StudyExhausted`. (The study's cost model, blind to the cache,
        decides nothing here.)"""
        budget = status.budget
        assert budget.usd is not None
        left = budget.usd - status.spent_usd
        storage, study_id = self._state.storage, self._state.study_id
        bounds = StageBounds.of(storage.stage_runs(study_id), len(shape.stages))
        own = strategy.forecast_usd(params) if strategy is not None else None
        if not bounds.known and own is None:
            return params
        prefixes = cached_prefixes(storage, study_id, DiskCache(shape.cache_root(self._state.settings.artifact_root),
                                                               shape.cache_max_bytes))
        cached = {p.key for p in prefixes}
        need = max(bounds.of_params(shape, params, cached), own or 0.0)
        if need <= left * (1 + 1e-9):
            return params
        fits: list[tuple[dict[str, Any], float]] = []
        for prefix in prefixes:
            try:
                candidate = space.validate({**params, **prefix.params})
            except SpaceError:  # the prefix's values make some of params' later ones inactive
                continue
            bound = bounds.of_params(shape, candidate, cached)
            if bound <= left * (1 + 1e-9):
                fits.append((candidate, bound))
        if not fits:
            raise StudyExhausted(
                f"the next trial may cost up to ${need:,.4f} (its stages' costs in recent runs), more than the "
                f"${max(left, 0.0):,.4f} left of the ${budget.usd:,.2f} budget (${status.spent_usd:,.4f} spent), "
                f"and so may every completion of the {len(prefixes)} cached prefix(es)",
                "usd",
            )
        import numpy as np

        enc = encoder_of(space)
        at = np.nan_to_num(enc.snap(enc.encode([params])), nan=0.5)
        dist = [float(np.sum((np.nan_to_num(enc.snap(enc.encode([c])), nan=0.5) - at) ** 2)) for c, _ in fits]
        pick, bound = fits[int(np.argmin(dist))]
        log.info("admission: trial %d's proposal may cost up to $%.4f, more than the $%.4f left: the nearest "
                 "completion of a cached prefix instead (up to $%.4f)", number, need, left, bound)
        return pick

    def basic_context(self) -> Context:
        """The strategy's :class:`~thrifty.strategies.base.Context` before any proposal: the
        objectives and constraints (the cost model comes per proposal)."""
        s = self._state.settings
        return Context(objectives=dict(s.objectives), constraints=dict(s.constraints),
                       budget_trials=Budget.from_dict(self._state.record.budget).trials,
                       stage_params=s.pipeline.stage_params if s.pipeline is not None else ())

    def proposal_context(self, strategy: Strategy, snapshot: Snapshot, trials: History) -> Context:
        """The :class:`~thrifty.strategies.base.Context` of a proposal made from ``snapshot``: with
        the cost model when the strategy wants it or the study has a dollar budget, and the
        dollars spent."""
        budget = snapshot.status.budget
        model, resource = None, 1.0
        if strategy.wants_cost_model or budget.usd is not None:
            self.refresh(snapshot, trials)
            if self._model is not None and self._model[1].is_fitted:
                model, resource = self._model[1], self._model[2]
        s = self._state.settings
        spent = snapshot.status.spent_usd if budget.usd is not None else 0.0
        stage_params: tuple[tuple[str, ...], ...] = ()
        prefixes: tuple[CachedPrefix, ...] = ()
        run_usd: dict[int, tuple[float | None, ...]] = {}
        if s.pipeline is not None:  # the memo cache's index, only entries whose output is on disk now
            stage_params = s.pipeline.stage_params
            cache = DiskCache(s.pipeline.cache_root(s.artifact_root), s.pipeline.cache_max_bytes)
            storage, study_id = self._state.storage, self._state.study_id
            prefixes = cached_prefixes(storage, study_id, cache)
            if strategy.needs_history:
                run_usd = stage_run_usd(storage.stage_runs(study_id), trials, len(stage_params))
        return Context(objectives=dict(s.objectives), cost_model=model, max_resource=resource,
                       budget_usd=budget.usd, spent_usd=spent, budget_trials=budget.trials,
                       constraints=dict(s.constraints), stage_params=stage_params, cached_prefixes=prefixes,
                       stage_run_usd=run_usd)
