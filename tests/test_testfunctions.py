"""The synthetic problems strategies are tested on: known minima at known points, cost surface."""

from __future__ import annotations

import math

import pytest

from thrifty.testfunctions import PROBLEMS, problem


@pytest.mark.parametrize(("name", "point"), [
    ("branin", {"x1": math.pi, "x2": 2.275}),
    ("hartmann6", {f"x{i + 1}": v for i, v in enumerate([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])}),
    ("ackley5", {f"x{i}": 0.0 for i in range(1, 6)}),
    ("rosenbrock4", {f"x{i}": 1.0 for i in range(1, 5)}),
])
def test_minimum_at_the_known_point(name, point):
    p = problem(name)
    assert p.f(point) == pytest.approx(p.minimum, abs=1e-5)
    assert p.regret(p.f(point)) == pytest.approx(0.0, abs=1e-5)


def test_cost_surface_spans_ten_times():
    p = PROBLEMS["branin"]
    assert p.cost_usd({"x1": -5.0, "x2": 0.0}) == pytest.approx(0.1)
    assert p.cost_usd({"x1": 10.0, "x2": 15.0}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown problem"):
        problem("sphere")
