"""Pipelines benchmark (issue 15, synthetic setting): candidates per dollar and the best found when
a memo cache can serve a prefix of the pipeline.

Run from the repository root:

    .venv/bin/python benchmarks/pipelines.py              # 20 seeds, writes benchmarks/RESULTS.md
    .venv/bin/python benchmarks/pipelines.py --quick      # 3 seeds, a smoke run
    .venv/bin/python benchmarks/pipelines.py --seeds 8 --jobs 2
    .venv/bin/python benchmarks/pipelines.py --family rotated --seeds 60 --first-seed 40   # held-out seeds

**The pipeline** (the issue's definitions). Three stages with 2, 3 and 2 parameters; the objective
to maximise is ``F(x) = -Beale(x1, x2) - Hartmann3(x3, x4, x5) - Branin(x6, x7)``, with ``x1..x5``
in ``[-2, 2]`` and ``x6, x7`` in ``[0, 10]``. Beale and Branin take their inputs as they are (Branin's
usual domain is ``[-5, 10] x [0, 15]``; ``[0, 10]^2`` holds two of its three minima). Hartmann3 is
defined on ``[0, 1]^3``: its inputs are ``(x + 2) / 4``, so ``[-2, 2]`` maps onto its whole domain.
Stage ``s`` with ``d_s`` parameters costs ``c_s = 1 / (500 d_s) * sum_j (a_j g_j(x_j) + b_j)^2``
dollars, with ``(g, a, b)`` = stage 1: ``(x^2, 18, 12)``, ``(sin, 7, 26)``; stage 2: ``(sin, 19,
39)``, ``(sin, 16, 39)``, ``(sin, 16, 20)``; stage 3: ``(cos, 11, 11)``, ``(cos, 15, 36)`` (a fresh
configuration costs about $1.6 to $16, $6.6 on average over the box). A stage read from the cache
costs ``CACHED_STAGE_USD`` = $0.1.

**The cache** (:class:`Simulator`): once a configuration is evaluated, its prefixes (stage 1, and
stages 1-2) are cached, keyed exactly on the prefix's parameter values; an evaluation reads the
deepest cached prefix it keeps and pays $0.1 for each stage so covered, then computes the rest.
Nothing is evicted. Every method gets the same simulator: only the choice of candidates differs.

**Budget**: $200 per run, the initial design (10 points) included; a run proposes until $200 is
spent. A configuration counts (evaluated, and for the best found) only if the run's spend is still
within $200 when it ends: the one that crosses the line is charged and counts for nothing.

**Methods**, one run each per seed:

- ``eeipu``: thrifty's ``eeipu`` (10 initial Sobol' points; the exponent cools from 1 to 0 as
  ``1 - (1 - r)^2``, ``r`` the share of the budget after the initial design still left);
- ``eeipu-blind``: the same with ``cost_exponent=0``: EI alone, still proposing completions of
  cached prefixes (memoization-aware through its candidates, cost-blind in its acquisition; like
  ``eeipu``, it proposes only what its forecast says the dollars left can pay for);
- ``gp-ei``: thrifty's ``gp`` with ``cost_aware=False``: plain expected improvement;
- ``gp-cost``: thrifty's ``gp`` with ``cost_aware=True``: EI per unit of the study's cost model's
  forecast of the trial's total dollars, cooled as the budget is spent (CArBO), blind to the cache;
- ``optuna-tpe`` and ``optuna-random``: Optuna's ``TPESampler`` and ``RandomSampler`` (defaults,
  seeded), driven by ask/tell.

thrifty's methods run a ``Study`` on storage ``"memory"`` with ``budget=Budget(usd=200)``, each
trial told with its dollars (``cost_usd``) so the study's budget logic (hard stop, admission of a
proposal against the dollars left) sees them. **Harness detail**: the simulator is no
:class:`thrifty.pipelines.Pipeline` (its costs are the issue's formulas, not seconds), so the study
cannot list its cache nor its stage records; :class:`HarnessEEIPU` sets ``Context.stage_params``,
``Context.cached_prefixes`` and ``Context.stage_run_usd`` (what each stage cost when it ran) from the
simulator at every ``bind``, as a pipeline study's own context does.

**Floors** (issue 15): ``eeipu`` evaluates at least 2.5 times the candidates of plain EI (medians
over seeds), and its median final objective beats every other method's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _report import machine, md_table, run_tasks, versions, write_results

import thrifty as th
from thrifty.pipelines import CachedPrefix
from thrifty.strategies.base import Context
from thrifty.strategies.eeipu import EEIPU

SECTION = "## Pipelines: memoization-aware search on a synthetic 3-stage pipeline (benchmarks/pipelines.py)"
BUDGET_USD = 200.0
N_INITIAL = 10
CACHED_STAGE_USD = 0.1
SEEDS = 20
QUICK_SEEDS = 3
#: sup F over the box: -(Beale's least there) - (Hartmann3's minimum) - (Branin's minimum).
SUPREMUM = -0.523345 + 3.86278 - 0.397887
#: The floor: eeipu's candidates within the budget against plain EI's (medians).
CANDIDATES_FACTOR = 2.5
METHODS = ("eeipu", "eeipu-blind", "gp-ei", "gp-cost", "optuna-tpe", "optuna-random")

STAGE_PARAMS: tuple[tuple[str, ...], ...] = (("x1", "x2"), ("x3", "x4", "x5"), ("x6", "x7"))
SPACE = th.Space({
    **{n: th.Float(-2.0, 2.0) for n in ("x1", "x2", "x3", "x4", "x5")},
    **{n: th.Float(0.0, 10.0) for n in ("x6", "x7")},
})
#: Per stage, per parameter: (g, a, b) of the cost term (a g(x) + b)^2.
COST_TERMS = (
    ((np.square, 18.0, 12.0), (np.sin, 7.0, 26.0)),
    ((np.sin, 19.0, 39.0), (np.sin, 16.0, 39.0), (np.sin, 16.0, 20.0)),
    ((np.cos, 11.0, 11.0), (np.cos, 15.0, 36.0)),
)


@dataclass(frozen=True)
class Family:
    """Which parameters each stage holds, in pipeline order, and each stage's cost terms."""

    name: str
    stage_params: tuple[tuple[str, ...], ...]
    cost_terms: tuple[tuple[tuple[Any, float, float], ...], ...]


#: ``paper``: the issue's setting. ``reversed``: the same objective and cost terms with the stages in
#: the opposite order (Branin's stage first, Beale's last, each stage keeping its own cost terms), so
#: the costly, decisive x1 is in the last stage, where no cache can serve it: a check that a change to
#: ``eeipu`` is not fitted to one cost structure. ``rotated``: the paper's stages shifted by one
#: (Hartmann3's stage first, Branin's second, Beale's last), a third order held out while a change was
#: being judged on the first two (no floor applies to either).
FAMILIES = {
    "paper": Family("paper", STAGE_PARAMS, COST_TERMS),
    "reversed": Family("reversed", STAGE_PARAMS[::-1], COST_TERMS[::-1]),
    "rotated": Family("rotated", STAGE_PARAMS[1:] + STAGE_PARAMS[:1], COST_TERMS[1:] + COST_TERMS[:1]),
}
_H3_A = np.array([[3.0, 10.0, 30.0], [0.1, 10.0, 35.0], [3.0, 10.0, 30.0], [0.1, 10.0, 35.0]])
_H3_C = np.array([1.0, 1.2, 3.0, 3.2])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])


# -- the pipeline ----------------------------------------------------------------------------------
def beale(x: float, y: float) -> float:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y ** 3) ** 2


def hartmann3(u: Sequence[float]) -> float:
    """Hartmann3 on ``[0, 1]^3`` (minimum -3.86278)."""
    d = np.sum(_H3_A * (np.asarray(u)[None, :] - _H3_P) ** 2, axis=1)
    return float(-np.sum(_H3_C * np.exp(-d)))


def branin(x: float, y: float) -> float:
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6.0) ** 2 + 10.0 * (1 - t) * math.cos(x) + 10.0


def objective(p: Mapping[str, float]) -> float:
    """F(x), to maximise."""
    u = [(p[n] + 2.0) / 4.0 for n in ("x3", "x4", "x5")]
    return -beale(p["x1"], p["x2"]) - hartmann3(u) - branin(p["x6"], p["x7"])


def stage_cost(s: int, p: Mapping[str, float], family: Family = FAMILIES["paper"]) -> float:
    """Dollars computing stage ``s`` (0-based) of ``family`` costs."""
    terms = family.cost_terms[s]
    total = sum((a * float(g(p[n])) + b) ** 2 for n, (g, a, b) in zip(family.stage_params[s], terms))
    return total / (500.0 * len(terms))


@dataclass(frozen=True)
class Evaluation:
    """One pass through the pipeline: the value, the dollars charged, what each stage cost when it
    ran (``None``: read from the cache or skipped), and the last stage read from the cache (-1)."""

    value: float
    charged_usd: float
    run_usd: tuple[float | None, ...]
    hit: int


@dataclass
class Simulator:
    """The pipeline with its memo cache (module doc): prefix (stage, exact values) -> what
    computing it cost."""

    family: Family = FAMILIES["paper"]
    cache: dict[tuple[int, tuple[float, ...]], float] = field(default_factory=dict)
    #: Per trial number, what each stage cost when it ran (``None``: read from the cache).
    ran: dict[int, tuple[float | None, ...]] = field(default_factory=dict)

    def key(self, s: int, p: Mapping[str, float]) -> tuple[int, tuple[float, ...]]:
        return s, tuple(float(p[n]) for names in self.family.stage_params[: s + 1] for n in names)

    def evaluate(self, p: Mapping[str, float]) -> Evaluation:
        n = len(self.family.stage_params)
        hit = next((s for s in reversed(range(n - 1)) if self.key(s, p) in self.cache), -1)
        charged = CACHED_STAGE_USD * (hit + 1)
        run: list[float | None] = [None] * (hit + 1)
        prefix_usd = self.cache[self.key(hit, p)] if hit >= 0 else 0.0
        for s in range(hit + 1, n):
            c = stage_cost(s, p, self.family)
            run.append(c)
            charged += c
            prefix_usd += c
            if s < n - 1:
                self.cache[self.key(s, p)] = prefix_usd
        return Evaluation(objective(p), charged, tuple(run), hit)

    def prefixes(self) -> tuple[CachedPrefix, ...]:
        """The cache as a pipeline study's context lists it."""
        out = []
        for (s, values), run_usd in self.cache.items():
            names = [n for names in self.family.stage_params[: s + 1] for n in names]
            out.append(CachedPrefix(stage=s, params=dict(zip(names, values)), key=f"{s}:{values!r}",
                                    read_cost_usd=CACHED_STAGE_USD * (s + 1), run_cost_usd=run_usd))
        return tuple(out)


class HarnessEEIPU(EEIPU):
    """``eeipu`` told the simulator's cache through its context (temporary harness detail, module
    doc)."""

    def __init__(self, sim: Simulator, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sim = sim

    def bind(self, context: Context) -> None:
        super().bind(dataclasses.replace(context, stage_params=self.sim.family.stage_params,
                                         cached_prefixes=self.sim.prefixes(),
                                         stage_run_usd=dict(self.sim.ran)))


# -- one run -------------------------------------------------------------------------------------
@dataclass
class Run:
    """A run's account: configurations that ended within the budget, the best of them, dollars."""

    method: str
    seed: int
    evaluated: int = 0
    best: float = -math.inf
    spent_usd: float = 0.0
    hits: int = 0
    wall_s: float = 0.0

    def add(self, e: Evaluation) -> bool:
        """Charge ``e``; whether the run goes on (the budget is not spent)."""
        self.spent_usd += e.charged_usd
        if self.spent_usd <= BUDGET_USD + 1e-9:
            self.evaluated += 1
            self.best = max(self.best, e.value)
            self.hits += e.hit >= 0
        return self.spent_usd < BUDGET_USD


def thrifty_strategy(method: str, sim: Simulator) -> Any:
    if method == "eeipu":
        return HarnessEEIPU(sim, n_startup=N_INITIAL)
    if method == "eeipu-blind":
        return HarnessEEIPU(sim, n_startup=N_INITIAL, cost_exponent=0.0)
    return {"name": "gp", "n_startup": N_INITIAL, "cost_aware": method == "gp-cost"}


def run_thrifty(method: str, seed: int, family: Family) -> Run:
    sim, out = Simulator(family), Run(method, seed)
    study = th.Study.create(SPACE, "max", storage="memory", seed=seed, strategy=thrifty_strategy(method, sim),
                            scheduler=None, budget=th.Budget(usd=BUDGET_USD))
    while True:
        try:
            t = study.ask()
        except th.StudyExhausted:
            break
        e = sim.evaluate(t.params)
        sim.ran[t.number] = tuple(e.run_usd)
        study.tell(t, e.value, cost_usd=e.charged_usd)
        if not out.add(e):
            break
    return out


def run_optuna(method: str, seed: int, family: Family) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if method == "optuna-tpe" else \
        optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = {n: optuna.distributions.FloatDistribution(SPACE[n].low, SPACE[n].high) for n in SPACE}
    sim, out = Simulator(family), Run(method, seed)
    while True:
        t = study.ask(dists)
        e = sim.evaluate(t.params)
        study.tell(t, e.value)
        if not out.add(e):
            break
    return out


def run_one(task: tuple[str, int, str]) -> dict[str, Any]:
    method, seed, family_name = task
    family = FAMILIES[family_name]
    t0 = time.perf_counter()
    r = run_optuna(method, seed, family) if method.startswith("optuna") else run_thrifty(method, seed, family)
    r.wall_s = time.perf_counter() - t0
    print(f"  {method:14s} seed {seed:2d}: {r.evaluated:3d} evaluated, best {r.best:9.4f}, "
          f"{r.hits:3d} cache hits, {r.wall_s:6.1f} s", flush=True)
    return dataclasses.asdict(r)


# -- the report ------------------------------------------------------------------------------------
def summary(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: evaluated (median, p10, p90 over seeds) and the final best (median; p90: the
    value nine runs in ten reach, i.e. the 10th percentile; worst)."""
    out = {}
    for m in METHODS:
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        ev = np.array([r["evaluated"] for r in rs], dtype=float)
        best = np.sort([r["best"] for r in rs])
        out[m] = {"runs": len(rs), "evaluated_median": float(np.median(ev)),
                  "evaluated_p10": float(np.percentile(ev, 10)), "evaluated_p90": float(np.percentile(ev, 90)),
                  "best_median": float(np.median(best)), "best_p90": float(np.percentile(best, 10)),
                  "best_worst": float(best[0]), "hits_median": float(np.median([r["hits"] for r in rs])),
                  "wall_s_median": float(np.median([r["wall_s"] for r in rs]))}
    return out


def floors(summ: Mapping[str, Mapping[str, float]]) -> list[str]:
    e, plain = summ["eeipu"], summ["gp-ei"]
    ratio = e["evaluated_median"] / max(plain["evaluated_median"], 1.0)
    ok1 = ratio >= CANDIDATES_FACTOR
    others = {m: s["best_median"] for m, s in summ.items() if m != "eeipu"}
    ok2 = all(e["best_median"] > v for v in others.values())
    runner_up = max(others, key=others.__getitem__)
    return [(f"- Candidates: eeipu evaluates {ratio:.2f}x plain EI's (median {e['evaluated_median']:.0f} against "
             f"{plain['evaluated_median']:.0f}; floor {CANDIDATES_FACTOR}x): **{'PASS' if ok1 else 'FAIL'}**."),
            (f"- Final objective: eeipu's median {e['best_median']:.4f} against the best other method's "
             f"({runner_up}) {others[runner_up]:.4f}: **{'PASS' if ok2 else 'FAIL'}**.")]


def section_of(family: Family) -> str:
    """The RESULTS.md section of a family's runs."""
    if family.name == "paper":
        return SECTION
    return SECTION.replace("synthetic 3-stage pipeline", f"synthetic 3-stage pipeline, stages {family.name}")


def report(runs: Sequence[dict[str, Any]], seeds: int, cmd: str, took_s: float,
           family: Family = FAMILIES["paper"], raw: str = "pipelines.json") -> list[str]:
    summ = summary(runs)
    rows = [[m, s["runs"], f"{s['evaluated_median']:.0f} ({s['evaluated_p10']:.0f}-{s['evaluated_p90']:.0f})",
             f"{s['hits_median']:.0f}", f"{s['best_median']:.4f}", f"{s['best_p90']:.4f}", f"{s['best_worst']:.4f}",
             f"{s['wall_s_median']:.1f}"] for m, s in summ.items()]
    vers = versions(["numpy", "scipy", "optuna"])
    lines = [section_of(family), "",
             f"Date {time.strftime('%Y-%m-%d')}; machine: {machine()}; command: `{cmd}`; {seeds} seeds, "
             f"{took_s / 60:.1f} min. Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items())
             + f". Raw numbers: `benchmarks/{raw}`. Stages: "
             + " -> ".join("(" + ", ".join(names) + ")" for names in family.stage_params) + ". Definitions, budget and methods: the script's docstring "
             f"(${BUDGET_USD:.0f} per run including {N_INITIAL} initial points; a cached stage costs "
             f"${CACHED_STAGE_USD}; the objective is maximised: its supremum in the box is {SUPREMUM:.4f}, Beale's least "
             "value there being 0.5233 at (2, 0.17), Hartmann3's -3.8628 and Branin's 0.3979).", "",
             *md_table(["method", "runs", "evaluated within $200: median (p10-p90)", "cache hits (median)",
                        "final best: median", "p90 (9 runs in 10 reach)", "worst", "wall s per run"], rows),
             ""]
    if "eeipu" in summ and "gp-ei" in summ:
        if family.name == "paper":
            lines += ["Floors (issue 15):", "", *floors(summ), ""]
        else:
            lines += ["The same statistics as the floors (no floor applies to this family):", "",
                      *(line.replace("**PASS**", "yes").replace("**FAIL**", "no") for line in floors(summ)), ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} seeds")
    ap.add_argument("--seeds", type=int, default=None, help=f"seeds 0..N-1 (default {SEEDS})")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds FIRST..FIRST+N-1 (default 0); other than 0, a section and raw file of their own")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    ap.add_argument("--family", choices=sorted(FAMILIES), default="paper",
                    help="which stage holds which parameters (default paper: the issue's; see FAMILIES)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--json", default=None, help="raw numbers (default benchmarks/pipelines[-FAMILY].json)")
    args = ap.parse_args()
    seeds = args.seeds if args.seeds is not None else QUICK_SEEDS if args.quick else SEEDS
    methods = [m for m in args.methods.split(",") if m]
    first = args.first_seed
    tasks = [(m, s, args.family) for s in range(first, first + seeds) for m in methods]
    cmd = "python benchmarks/pipelines.py" + (" --quick" if args.quick else "") + \
        (f" --seeds {args.seeds}" if args.seeds is not None else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else "") \
        + (f" --family {args.family}" if args.family != "paper" else "") \
        + (f" --first-seed {first}" if first else "")
    which = "" if args.family == "paper" else f"-{args.family}"
    which += f"-seeds{first}-{first + seeds - 1}" if first else ""
    raw = Path(args.json) if args.json else HERE / f"pipelines{which}.json"
    section = section_of(FAMILIES[args.family]) + (f", seeds {first}-{first + seeds - 1}" if first else "")
    t0 = time.time()
    runs = run_tasks(run_one, tasks, args.jobs)
    took = time.time() - t0
    raw.write_text(json.dumps({"runs": runs, "summary": summary(runs), "machine": machine(), "family": args.family,
                               "date": time.strftime("%Y-%m-%d"), "command": cmd, "seconds": took}, indent=1))
    lines = report(runs, seeds, cmd, took, FAMILIES[args.family], raw.name)
    if set(methods) >= {"eeipu", "gp-ei"}:
        write_results(Path(args.out), section, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
