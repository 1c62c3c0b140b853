"""Load a study in a fresh process and print the scheduler's decisions as JSON (used by
tests/schedulers/test_two_processes.py, which computes the same in its own process): the plan for
the next ask, and for every RUNNING trial the decision at its latest report and, if it stops, its
successor."""

from __future__ import annotations

import json
import sys

import thrifty as th


def decisions(study: th.Study) -> dict:
    history = study.history()
    plan = study.scheduler.plan(history, study.objectives)
    out = {"plan": {"resume": list(plan.resume), "new": plan.new}, "decisions": {}}
    for t in history:
        if t.state is th.TrialState.RUNNING:
            d = study.scheduler.decide(t, history, study.objectives)
            succ = study.scheduler.successor(t, history, study.objectives) if d.value == "stop" else None
            out["decisions"][str(t.number)] = {
                "decision": d.value,
                "successor": None if succ is None else {"parent": succ.parent, "params": dict(succ.params),
                                                        "start_step": succ.start_step},
            }
    return json.loads(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    print(json.dumps(decisions(th.Study.load(sys.argv[2], storage=sys.argv[1])), sort_keys=True))
