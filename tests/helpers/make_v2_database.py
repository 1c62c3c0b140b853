"""Write the schema-version-2 database that tests/storage/test_migration_v3.py upgrades.

Run it with the thrifty that wrote version 2 (main before typed stop reasons, e.g. commit 6ffefce),
not with this tree's::

    git worktree add --detach /tmp/v2src 6ffefce
    PYTHONPATH=/tmp/v2src/src python tests/helpers/make_v2_database.py sqlite:///tests/data/schema_v2.db
    PYTHONPATH=/tmp/v2src/src python tests/helpers/make_v2_database.py postgresql://postgres@127.0.0.1:5432/v2
    pg_dump --inserts --no-owner --no-privileges -d v2 ... > tests/data/schema_v2_postgresql.sql

One study, ``mixed`` (dollar budget $1, hard), through the public API; each trial ends one way a
version-2 reason was written (its number: how):

0. COMPLETED; 1. STOPPED with the scheduler's words; 2. PAUSED by the scheduler; 3. STOPPED after a
user's stop request; 4. FAILED; 5. STOPPED with no reason; 6. RUNNING when the budget's breaker
tripped (asked to stop, budget words); 7. STOPPED by the breaker (its report reached the limit).
"""

from __future__ import annotations

import sys

import thrifty as th
from thrifty.storage.base import SCHEMA_VERSION


def main(url: str) -> None:
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="mixed", storage=url, seed=3,
                            budget=th.Budget(usd=1.0))
    assert SCHEMA_VERSION == 2, "run this with the thrifty that writes schema version 2"

    t0 = study.ask()
    t0.report(0.25, step=1, cost_usd=0.05)
    study.tell(t0, 0.5, elapsed_s=0.0)

    t1 = study.ask()
    t1.report(0.125, step=1, cost_usd=0.05)
    study.tell(t1, state="stopped", reason="scheduler: asha", elapsed_s=0.0)

    t2 = study.ask()
    t2.report(0.375, step=1, cost_usd=0.05)
    study.tell(t2, state="paused", reason="scheduler: asha: paused at step 1", elapsed_s=0.0)

    t3 = study.ask()
    study.stop_trial(t3.number)
    t3.report(0.0625, step=1, cost_usd=0.05)
    assert t3.should_stop()
    study.tell(t3, state="stopped", elapsed_s=0.0)

    t4 = study.ask()
    study.tell(t4, state="failed", error="boom", elapsed_s=0.0)

    t5 = study.ask()
    t5.report(0.75, step=2, cost_usd=0.05)
    study.tell(t5, state="stopped", elapsed_s=0.0)

    t6 = study.ask()
    t6.report(0.5, step=1, cost_usd=0.05)
    t7 = study.ask()
    try:
        t7.report(0.5, step=1, cost_usd=1.0)
    except th.TrialStopped as exc:
        study.tell(t7, state="stopped", reason=exc.reason, elapsed_s=0.0)
    else:
        raise AssertionError("the breaker should have tripped")
    study.close()


if __name__ == "__main__":
    main(sys.argv[1])
