"""Trial records (Measurement, Trial, TrialState) and Budget validation."""

from __future__ import annotations

import dataclasses
import math
import re
from types import MappingProxyType

import numpy as np
import pytest

import thrifty as th

NAN = float("nan")
INF = float("inf")


def invalid(message: str):
    return pytest.raises(th.ValidationError, match=message)


# -- Measurement --------------------------------------------------------------------------------


class TestMeasurement:
    def test_fields_are_validated_and_normalized(self):
        m = th.Measurement(step=3, metrics={"acc": 1, "loss": np.float32(0.25)}, cost_usd=2, elapsed_s=5)
        assert m.step == 3
        assert dict(m.metrics) == {"acc": 1.0, "loss": 0.25}
        assert all(type(v) is float for v in m.metrics.values())
        assert type(m.cost_usd) is float and m.cost_usd == 2.0
        assert type(m.elapsed_s) is float and m.elapsed_s == 5.0

    def test_single_number_metric_is_named_value(self):
        assert dict(th.Measurement(step=None, metrics=0.5).metrics) == {"value": 0.5}

    def test_empty_metrics_allowed_for_cost_only(self):
        m = th.Measurement(step=None, metrics={}, cost_usd=0.1)
        assert dict(m.metrics) == {} and m.cost_usd == 0.1

    def test_frozen(self):
        m = th.Measurement(step=1, metrics={"acc": 0.5})
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.cost_usd = 1.0  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.metrics = {}  # type: ignore[misc]

    def test_metrics_is_a_read_only_copy(self):
        source = {"acc": 0.5}
        m = th.Measurement(step=1, metrics=source)
        assert isinstance(m.metrics, MappingProxyType)
        with pytest.raises(TypeError):
            m.metrics["acc"] = 1.0  # type: ignore[index]
        source["acc"] = 0.9
        source["new"] = 1.0
        assert dict(m.metrics) == {"acc": 0.5}

    @pytest.mark.parametrize("cost", [NAN, INF, -INF, -0.01, -1])
    def test_bad_cost(self, cost):
        with invalid(re.escape(f"cost_usd={cost!r}: ")):
            th.Measurement(step=1, metrics={}, cost_usd=cost)

    def test_cost_messages(self):
        with invalid("a cost must be finite"):
            th.Measurement(step=1, metrics={}, cost_usd=NAN)
        with invalid("a cost cannot be negative"):
            th.Measurement(step=1, metrics={}, cost_usd=-1)

    @pytest.mark.parametrize("cost", [True, "1.0", None, [1]])
    def test_cost_not_a_number(self, cost):
        with invalid("expected a number of dollars"):
            th.Measurement(step=1, metrics={}, cost_usd=cost)

    @pytest.mark.parametrize("elapsed", [-1, -0.5, NAN, INF])
    def test_bad_elapsed(self, elapsed):
        with invalid(re.escape(f"elapsed_s={elapsed!r}: must be a finite number of seconds >= 0")):
            th.Measurement(step=1, metrics={}, elapsed_s=elapsed)

    @pytest.mark.parametrize("elapsed", [False, "3", None])
    def test_elapsed_not_a_number(self, elapsed):
        with invalid("expected a number of seconds"):
            th.Measurement(step=1, metrics={}, elapsed_s=elapsed)

    @pytest.mark.parametrize("step", [-1, NAN, INF])
    def test_bad_step(self, step):
        with invalid(re.escape(f"step={step!r}: must be a finite number >= 0")):
            th.Measurement(step=step, metrics={})

    @pytest.mark.parametrize("step", [True, "1"])
    def test_step_not_a_number(self, step):
        with invalid("expected a number"):
            th.Measurement(step=step, metrics={})

    @pytest.mark.parametrize("value", ["abc", "0.5", b"1", None, True, [1.0], {"x": 1}, 1j])
    def test_non_numeric_metric(self, value):
        with invalid(re.escape(f"metric 'acc'={value!r}: expected a number")):
            th.Measurement(step=1, metrics={"acc": value})

    @pytest.mark.parametrize("name", ["", 3, None])
    def test_bad_metric_name(self, name):
        with invalid("must be a non-empty string"):
            th.Measurement(step=1, metrics={name: 1.0})

    def test_nan_and_inf_metrics_are_recorded(self):
        m = th.Measurement(step=1, metrics={"a": NAN, "b": INF, "c": -INF})
        assert math.isnan(m.metrics["a"])
        assert m.metrics["b"] == INF and m.metrics["c"] == -INF


# -- Trial --------------------------------------------------------------------------------------


def _trial(**kw) -> th.Trial:
    base = dict(number=0, state="completed", params={"x": 1})
    return th.Trial(**(base | kw))


class TestTrial:
    def test_state_parsed(self):
        t = _trial(state="RUNNING")
        assert t.state is th.TrialState.RUNNING
        assert not t.is_finished

    def test_bad_state(self):
        names = "pending, running, paused, completed, stopped, failed, infeasible"
        with invalid(re.escape(f"unknown trial state 'done' (expected one of {names})")):
            _trial(state="done")

    def test_frozen(self):
        t = _trial()
        with pytest.raises(dataclasses.FrozenInstanceError):
            t.number = 5  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            t.state = th.TrialState.FAILED  # type: ignore[misc]

    def test_mappings_are_read_only_copies(self):
        params = {"x": 1}
        metrics = {"value": 0.5}
        attrs = {"note": "a"}
        t = _trial(params=params, metrics=metrics, user_attrs=attrs)
        for mapping in (t.params, t.metrics, t.user_attrs):
            assert isinstance(mapping, MappingProxyType)
            with pytest.raises(TypeError):
                mapping["z"] = 1  # type: ignore[index]
        params["x"] = 2
        metrics["value"] = 9.0
        attrs["note"] = "b"
        assert dict(t.params) == {"x": 1}
        assert dict(t.metrics) == {"value": 0.5}
        assert dict(t.user_attrs) == {"note": "a"}

    def test_measurements_become_a_tuple(self):
        ms = [th.Measurement(step=1, metrics={"v": 1.0}), th.Measurement(step=4, metrics={"v": 2.0}),
              th.Measurement(step=None, metrics={"v": 3.0})]
        t = _trial(measurements=ms)
        assert isinstance(t.measurements, tuple)
        ms.clear()
        assert len(t.measurements) == 3
        assert t.last_step == 4

    def test_last_step_none_without_steps(self):
        assert _trial().last_step is None
        assert _trial(measurements=[th.Measurement(step=None, metrics={})]).last_step is None

    def test_value_uses_objective_name(self):
        t = _trial(metrics={"acc": 0.9, "value": 0.1}, objective="acc")
        assert t.value == 0.9
        assert _trial(metrics={"acc": 0.9, "value": 0.1}).value == 0.1
        assert _trial(metrics={"acc": 0.9}).value is None

    def test_equality_ignores_id(self):
        assert _trial(id=1) == _trial(id=2)
        assert _trial(number=1) != _trial(number=2)


class TestTrialState:
    @pytest.mark.parametrize("text", ["completed", "COMPLETED", "Completed"])
    def test_parse_is_case_insensitive(self, text):
        assert th.TrialState.parse(text) is th.TrialState.COMPLETED

    def test_parse_passes_states_through(self):
        assert th.TrialState.parse(th.TrialState.STOPPED) is th.TrialState.STOPPED

    @pytest.mark.parametrize("bad", ["done", "", None, 3])
    def test_parse_errors(self, bad):
        with invalid(re.escape(f"unknown trial state {bad!r} (expected one of pending, running, paused, completed")):
            th.TrialState.parse(bad)

    def test_parse_error_is_a_value_error_and_thrifty_error(self):
        with pytest.raises(ValueError):
            th.TrialState.parse("nope")
        with pytest.raises(th.ThriftyError):
            th.TrialState.parse("nope")

    def test_is_finished(self):
        finished = {s for s in th.TrialState if s.is_finished}
        assert finished == {
            th.TrialState.COMPLETED, th.TrialState.STOPPED, th.TrialState.FAILED, th.TrialState.INFEASIBLE
        }


# -- Budget -------------------------------------------------------------------------------------


class TestBudget:
    def test_defaults_empty(self):
        b = th.Budget()
        assert not b
        assert b.to_dict() == {}
        assert th.Budget.from_dict(None) == b
        assert th.Budget.from_dict({}) == b

    def test_valid(self):
        b = th.Budget(trials=10, usd=5)
        assert b
        assert b.trials == 10 and b.usd == 5.0 and type(b.usd) is float
        assert th.Budget(usd=0.01)
        assert th.Budget(trials=1)

    @pytest.mark.parametrize("trials", [0, -1])
    def test_trials_must_be_positive(self, trials):
        with invalid(re.escape(f"Budget(trials={trials}): a budget must allow at least one trial")):
            th.Budget(trials=trials)

    @pytest.mark.parametrize("trials", [True, 2.0, "3", NAN])
    def test_trials_must_be_whole_number(self, trials):
        with invalid(re.escape(f"Budget(trials={trials!r}): expected a whole number of trials")):
            th.Budget(trials=trials)

    @pytest.mark.parametrize("usd", [0, 0.0, -1, NAN, INF])
    def test_usd_must_be_positive_and_finite(self, usd):
        with invalid(re.escape(f"Budget(usd={usd!r}): a dollar budget must be a finite amount above zero")):
            th.Budget(usd=usd)

    @pytest.mark.parametrize("usd", [True, "5", [5]])
    def test_usd_must_be_number(self, usd):
        with invalid(re.escape(f"Budget(usd={usd!r}): expected a number of dollars")):
            th.Budget(usd=usd)

    def test_from_dict_unknown_keys(self):
        with invalid(re.escape("budget: unknown limit(s) dollars, hours; known: trials, usd, gpu_hours, wall_s, hard")):
            th.Budget.from_dict({"trials": 3, "hours": 1, "dollars": 2})

    def test_from_dict_bad_type(self):
        with invalid("expected th.Budget"):
            th.Budget.from_dict(100)

    def test_from_dict_validates_values(self):
        with invalid("at least one trial"):
            th.Budget.from_dict({"trials": 0})

    @pytest.mark.parametrize("b", [th.Budget(trials=7), th.Budget(usd=2.5), th.Budget(trials=3, usd=0.75), th.Budget()])
    def test_round_trip(self, b):
        d = b.to_dict()
        assert th.Budget.from_dict(d) == b
        assert set(d) <= {"trials", "usd", "gpu_hours", "wall_s", "hard"}

    def test_to_dict_content(self):
        assert th.Budget(trials=3, usd=1).to_dict() == {"trials": 3, "usd": 1.0}
        assert th.Budget(usd=1).to_dict() == {"usd": 1.0}

    def test_from_dict_passes_budget_through(self):
        b = th.Budget(trials=2)
        assert th.Budget.from_dict(b) is b

    def test_frozen(self):
        with pytest.raises(dataclasses.FrozenInstanceError):
            th.Budget(trials=2).trials = 3  # type: ignore[misc]


def test_errors_with_a_reason_survive_pickling():
    import pickle

    from thrifty.errors import StudyExhausted, TrialStopped

    for exc in (TrialStopped("budget reached", "budget"), StudyExhausted("no more trials", "trials")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc) and back.reason == exc.reason
