"""A program for the command-template tests: ``--opt`` and ``--lr`` always, ``--momentum`` only
when the optimizer is sgd, and then exactly when THRIFTY_PARAM_MOMENTUM is set. Prints val_acc.
A wrong or missing argument exits with status 2 (argparse), a wrong combination fails an assert."""

import argparse
import os

ap = argparse.ArgumentParser()
ap.add_argument("--opt", choices=["adam", "sgd"], required=True)
ap.add_argument("--momentum", type=float)
ap.add_argument("--lr", type=float, required=True)
args = ap.parse_args()
from_env = os.environ.get("THRIFTY_PARAM_MOMENTUM")
assert (args.opt == "sgd") == (args.momentum is not None) == (from_env is not None), (args, from_env)
assert from_env is None or float(from_env) == args.momentum
print(f"val_acc={args.lr + (args.momentum or 0.0):.6f}", flush=True)
