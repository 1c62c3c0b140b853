"""The exit statuses of the ``thrifty`` command, in one place: the constants below and
:data:`TABLE`, their meaning in words (``thrifty run --help`` prints it; README's CLI section
repeats it).

"The run did what was asked" (status 0) when some trials failed: at least one trial of this run
did not fail. A run where every trial failed exits 3 even if it ended by its ``n_trials``.
"""

from __future__ import annotations

#: The run did what was asked (see the module docstring).
OK = 0
#: An error before or instead of running (bad config, bad argument, unusable storage...).
ERROR = 1
#: Bad command-line usage (what argparse exits with).
USAGE = 2
#: Every trial of this run failed, or too many failed in a row.
TRIALS_FAILED = 3
#: Interrupted by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
#: Stopped by SIGTERM (128 + SIGTERM).
TERMINATED = 143

#: The table of ``thrifty run --help`` and README's CLI section.
TABLE = f"""exit status:
  {OK}    the run did what was asked: it ended normally (n_trials started, or a budget, a
       stop_when criterion, the strategy or --timeout ended it) and at least one of its trials
       completed, stopped, paused or was infeasible, or no trial was needed
  {ERROR}    error before or instead of running (bad config or argument, storage, a resumed
       study whose settings differ from the config)
  {USAGE}    bad usage (unknown option, missing argument)
  {TRIALS_FAILED}    every trial of this run failed, or max_consecutive_failures failed in a row
  {INTERRUPTED}  interrupted by Ctrl-C (SIGINT); run the same command again to resume
  {TERMINATED}  stopped by SIGTERM; run the same command again to resume"""
