"""Run the real ``thrifty`` command line at a signal, so that several start at the same instant.

usage: cli_together.py READY_FILE GO_FILE THRIFTY_ARGS...
Imports what the command needs, writes READY_FILE, waits until GO_FILE exists, then runs
``thrifty THRIFTY_ARGS...`` (``thrifty.cli.main``) and exits with its status.
"""

import os
import sys
import time

import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401 - imported before the start signal
import sqlalchemy.dialects.sqlite  # noqa: F401

import thrifty.cli
import thrifty.cost.forecast  # noqa: F401
import thrifty.storage.sql  # noqa: F401
import thrifty.study  # noqa: F401

ready, go, args = sys.argv[1], sys.argv[2], sys.argv[3:]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
sys.exit(thrifty.cli.main(args))
