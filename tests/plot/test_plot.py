"""thrifty.plot through the public API, on real SQLite studies: each picture shows what the
study holds (points, stops and their reasons, dollars), and refuses bad arguments in one line."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np
import pytest

import thrifty as th
import thrifty.plot as tp
from thrifty.schedulers.threshold import Threshold

SPACE = {
    "x": th.Float(0.0, 1.0),
    "lr": th.Float(1e-4, 1e-1, log=True),
    "opt": th.Categorical(["sgd", "adam"]),
    "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
}


def _objective(trial: th.TrialHandle) -> float | None:
    x = trial.params["x"]
    value = 0.0
    for step in range(1, 6):
        value = x * step / 5  # trials with small x look poor at step 2 and are stopped there
        trial.report(value, step=step, cost_usd=0.01 * (1 + x), elapsed_s=0.0)
        if trial.should_stop():
            return None
    return value


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> th.Study:
    url = f"sqlite:///{tmp_path_factory.mktemp('plot')}/plot.db"
    s = th.Study.create(SPACE, "max", storage=url, name="pictures", strategy="random", seed=3,
                        scheduler=Threshold(value=0.15, min_resource=2), budget=th.Budget(trials=30, usd=100.0))
    s.optimize(_objective, n_trials=24, progress=False)
    return s


def _counted(study: th.Study) -> list[th.Trial]:
    return [t for t in study.trials if t.state is th.TrialState.COMPLETED]


def test_the_study_has_both_completed_and_stopped_trials(study: th.Study) -> None:
    states = {t.state for t in study.trials}
    assert {th.TrialState.COMPLETED, th.TrialState.STOPPED} <= states


def test_best_vs_cost_has_a_point_per_completed_trial_at_the_dollars_spent_when_it_finished(study: th.Study) -> None:
    fig = tp.best_vs_cost(study)
    points, best = fig.data
    completed = _counted(study)
    assert len(points.x) == len(completed)
    finished = sorted((t for t in study.trials if t.state.is_finished), key=lambda t: t.finish_order)
    spent, expected = 0.0, {}
    for t in finished:
        spent += t.cost_usd
        if t.state is th.TrialState.COMPLETED:
            expected[t.number] = spent
    by_number = {int(c): x for c, x in zip(points.customdata, points.x)}
    assert by_number == pytest.approx(expected)
    assert list(best.x) == sorted(best.x) and math.isclose(best.x[-1], study.cost_usd, rel_tol=1e-9)
    assert best.y[-1] == pytest.approx(study.best.value)
    assert all(b2 >= b1 for b1, b2 in zip(best.y, best.y[1:]))  # maximised: the best never falls


def test_best_vs_cost_toggles_to_trials_finished(study: th.Study) -> None:
    fig = tp.best_vs_cost(study, against="trials")
    assert fig.layout.xaxis.title.text == "trials finished"
    n_finished = sum(1 for t in study.trials if t.state.is_finished)
    assert fig.data[1].x[-1] == n_finished
    by_dollars = fig.layout.updatemenus[0].buttons[0]
    assert by_dollars.label == "against dollars"
    assert by_dollars.args[0]["x"][1][-1] == pytest.approx(study.cost_usd)
    packed = by_dollars.args[0]["x"][0]  # the points' dollars, as plotly.js's packed float64 array
    assert packed["dtype"] == "f8"
    dollars = np.frombuffer(base64.b64decode(packed["bdata"]), dtype="<f8")
    assert list(dollars) == pytest.approx(list(tp.best_vs_cost(study).data[0].x))


def test_a_large_study_is_drawn_with_webgl_and_a_best_line_of_its_corners() -> None:
    study = th.Study.create({"x": th.Float(0, 1)}, "max", strategy="random", seed=3)
    for _ in range(2500):
        t = study.ask()
        study.tell(t, float(t.params["x"]), cost_usd=0.01)
    fig = tp.best_vs_cost(study)
    points, best = fig.data
    assert points.type == "scattergl" and len(points.x) == 2500
    corners = [0] + [i for i in range(1, 2500) if max(points.y[:i + 1]) > max(points.y[:i])] + [2499]
    assert list(best.x) == pytest.approx([points.x[i] for i in sorted(set(corners))])
    assert len(fig.to_json()) < 200_000  # packed arrays: ~50 bytes a point, not ~150


def test_optimization_history_keeps_number_order(study: th.Study) -> None:
    fig = tp.optimization_history(study)
    values, best = fig.data
    assert list(values.x) == [t.number for t in _counted(study)]
    assert best.y[-1] == pytest.approx(study.best.value)


def test_intermediate_values_marks_every_stop_with_its_reason(study: th.Study) -> None:
    fig = tp.intermediate_values(study)
    stops = [d for d in fig.data if d.name == "stop decision"]
    stopped = [t for t in study.trials if t.state is th.TrialState.STOPPED]
    assert len(stops) == 1 and len(stops[0].x) == len(stopped)
    for t in stopped:
        assert any(f"trial {t.number} stopped at step 2: scheduler: threshold" in text for text in stops[0].text)
    lines = {d.name: d for d in fig.data if d.name in ("completed", "stopped")}
    # one point per report of the metric with a step, one gap per trial
    n_reports = sum(1 for t in study.trials if t.state.value in lines for m in t.measurements if m.step is not None and "value" in m.metrics)
    n_trials = sum(1 for t in study.trials if t.state.value in lines)
    assert sum(len(d.x) for d in lines.values()) == n_reports + n_trials


def test_intermediate_values_draws_only_the_latest_trials_when_asked(study: th.Study) -> None:
    fig = tp.intermediate_values(study, max_trials=5)
    drawn = {n for d in fig.data if d.name != "stop decision" for n in d.customdata if n is not None}
    assert drawn == {t.number for t in study.trials[-5:]}
    assert "earlier ones not drawn" in fig.layout.title.text
    with pytest.raises(th.ValidationError, match="max_trials=0"):
        tp.intermediate_values(study, max_trials=0)


def test_parallel_coordinate_axes_follow_the_space(study: th.Study) -> None:
    fig = tp.parallel_coordinate(study)
    dims = {d.label: d for d in fig.data[0].dimensions}
    assert set(dims) == {"value", "x", "lr (log10)", "opt", "momentum"}
    completed = _counted(study)
    assert len(dims["value"].values) == len(completed)
    assert list(dims["lr (log10)"].values) == pytest.approx([math.log10(t.params["lr"]) for t in completed])
    assert list(dims["opt"].ticktext)[-2:] == ["sgd", "adam"]
    # adam trials have no momentum: drawn at a mark below the range
    inactive = [v for t, v in zip(completed, dims["momentum"].values) if "momentum" not in t.params]
    assert inactive and all(v < 0 for v in inactive) and dims["momentum"].range[0] < 0


def test_slice_plot_has_a_panel_per_parameter_and_refuses_unknown_ones(study: th.Study) -> None:
    fig = tp.slice_plot(study, params=["x", "lr"])
    assert [d.name for d in fig.data] == ["x", "lr"]
    assert len(fig.data[0].x) == len(_counted(study))
    with pytest.raises(th.ValidationError, match="nope not in the study's space"):
        tp.slice_plot(study, params=["x", "nope"])


def test_spend_by_state_adds_up_to_the_ledger(study: th.Study) -> None:
    fig = tp.spend_by_state(study)
    spent, saved = fig.data
    assert sum(spent.y) == pytest.approx(study.cost_usd)
    n_stopped = sum(1 for t in study.trials if t.state is th.TrialState.STOPPED)
    assert dict(zip(spent.x, spent.text))["stopped"] == f"{n_stopped} trial{'s' if n_stopped != 1 else ''}"
    assert saved.y[0] > 0  # stopped trials would have cost more at step 5


def test_budget_burndown_forecasts_to_the_trial_limit(study: th.Study) -> None:
    fig = tp.budget_burndown(study)
    spent = fig.data[0]
    assert spent.y[-1] == pytest.approx(study.cost_usd)
    forecast = [d for d in fig.data if d.name == "forecast to finish"]
    assert len(forecast) == 1 and forecast[0].x[-1] == 30  # the 30-trial budget
    assert forecast[0].y[-1] > study.cost_usd
    assert any("budget $100.00" in (a.text or "") for a in fig.layout.annotations)


def test_a_study_with_two_objectives_gets_its_pareto_front(tmp_path: Path) -> None:
    s = th.Study.create({"x": th.Float(0, 1)}, {"a": "min", "b": "min"}, storage=f"sqlite:///{tmp_path}/mo.db",
                        strategy="random", seed=1)
    s.optimize(lambda t: {"a": t.params["x"], "b": (1 - t.params["x"]) ** 2 + 0.1 * (t.number % 3)},
               n_trials=20, progress=False)
    fig = tp.pareto_front(s)
    dominated, front = fig.data
    assert sorted(front.customdata) == sorted(t.number for t in s.pareto_front())
    assert len(front.x) + len(dominated.x) == 20
    with pytest.raises(th.ValidationError, match="2 objectives"):
        tp.best_vs_cost(s)
    assert tp.best_vs_cost(s, objective="b").data[1].y[-1] == pytest.approx(min(t.metrics["b"] for t in s.trials))
    with pytest.raises(th.ValidationError, match="2 or 3"):
        tp.pareto_front(s, objectives=["a"])


def test_bad_arguments_are_one_line_errors(study: th.Study) -> None:
    with pytest.raises(th.ValidationError, match="against='euros'"):
        tp.best_vs_cost(study, against="euros")
    with pytest.raises(th.ValidationError, match="objective='loss'"):
        tp.optimization_history(study, objective="loss")
    with pytest.raises(th.ValidationError, match="2 or 3"):
        tp.pareto_front(study)


def test_the_html_report_is_one_self_contained_file(study: th.Study, tmp_path: Path) -> None:
    path = tp.write_html_report(study, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.count("<div class='figure'>") == 10  # 9 pictures + importance (at least 8 completed trials)
    assert "Contours over pairs of parameters" in text and "Timeline of the trials" in text
    assert "Parameter importance" in text
    assert "<script src=" not in text and 'src="http' not in text  # nothing fetched when opened
    assert text.count("plotly.js v") == 1  # the library embedded once
    assert "Where the money went" in text and f"trial {study.best.number}" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_the_html_report_escapes_what_the_study_holds(tmp_path: Path) -> None:
    s = th.Study.create({"tag": th.Categorical(["<b>bold</b>", "plain"])}, "max",
                        storage=f"sqlite:///{tmp_path}/esc.db", name="esc", seed=0)
    s.optimize(lambda t: 1.0 if t.params["tag"] == "<b>bold</b>" else 0.0, n_trials=6, progress=False)
    text = tp.html_report(s)
    assert "&lt;b&gt;bold&lt;/b&gt;" in text  # the best's params in the summary table
    assert "<b>bold</b>" not in text.split("<h2>Where the money went</h2>")[1].split("<div class='figure'>")[0]
