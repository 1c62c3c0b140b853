"""A bounded chaos test (issue 11), on SQLite and on PostgreSQL, with real processes.

8 worker processes (``Study.optimize(n_workers=8)`` in a driver subprocess), a few random SIGKILLs
of workers, then SIGTERM of the driver, while another process reads the study in a loop; then the
invariants (:func:`chaos.check`); then the study resumes (a new driver runs the rest of the trial
budget) and the invariants hold again. The harness is ``tests/helpers/chaos.py``, shared with
``benchmarks/faults.py``.

The faults are random: ``THRIFTY_CHAOS_SEED`` replays a run; a failure names its seed.
"""

from __future__ import annotations

import os
import random
import sys

import pytest

from conftest import HELPERS

sys.path.insert(0, HELPERS)
import chaos  # noqa: E402


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", [
    pytest.param("sqlite", marks=pytest.mark.slow),  # SQLite's crash recovery stays in the default run in runners/
    "postgresql",
])
def test_chaos_sigkills_and_a_sigterm_lose_nothing_and_the_study_resumes(backend, request, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'study.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    seed = int(os.environ.get("THRIFTY_CHAOS_SEED", random.randrange(2**31)))
    where = f"(seed {seed}: rerun with THRIFTY_CHAOS_SEED={seed})"
    run = chaos.Run(chaos.Config(url=db_url, n_trials=64, n_enqueued=8, seed=seed), tmp_path)
    try:
        run.start_reader()
        d = run.start_driver(step_s=0.3)  # slow trials: at most ~40 of the 64 start before the SIGTERM
        assert run.wait_for_trials(d, 8), f"the run did not start {where}: {d.proc.poll()}"
        run.chaos(d, n_faults=run.rng.randint(2, 4), kinds={"sigkill_worker": 1.0}, gap_s=(0.2, 0.6))
        run.wait_driver(d)
        assert d.exit_code == 143, f"{where} driver exit {d.exit_code}: {d.err[-2000:]}"
        assert d.running_at_exit == 0, f"{where} SIGTERM left {d.running_at_exit} trials RUNNING"
        assert "Traceback" not in d.err, f"{where} {d.err}"
        stopped = chaos.check(run, final=False)
        assert stopped.ok() and not stopped.problems, f"{where} after SIGTERM: {stopped.problems}"
        assert stopped.faults["sigkill_worker"] >= 2 and stopped.faults["sigterm_driver"] == 1, stopped.faults
        assert stopped.finished_lineages < 64, f"{where} nothing left to resume"

        run.finish()  # the study resumes: the retries first, then the rest of the budget
    finally:
        run.close()
    final = chaos.check(run, final=True)
    assert final.ok() and not final.problems, f"{where} after resuming: {final.problems}"
    assert final.completed == 64 and final.unresolved == 0, f"{where} {final.as_dict()}"
    assert final.reader["reads"] > 0, f"{where} the reader never read: {final.reader}"
