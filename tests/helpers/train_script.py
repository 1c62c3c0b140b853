"""A training program for the script runner tests. Behaviour by --mode:

normal      prints "epoch=E val_acc=A" for E in 1..epochs (and noise lines, some on stderr)
slow        same, 0.2 s per epoch, and writes its pid to pid.txt in the checkpoint dir
fail        crashes with exit status 3 after epoch 2, with a message on stderr
oom         prints "CUDA out of memory" on stderr at epoch 2 and then hangs
hang        prints epoch 1 and sleeps forever
preempt     kills itself with SIGKILL at epoch 2 on its first run (a marker in the checkpoint dir)
"""

import argparse
import json
import os
import signal
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--mode", default="normal")
args = ap.parse_args()
ckpt = os.environ["THRIFTY_CHECKPOINT_DIR"]
params = json.load(open(os.environ["THRIFTY_PARAMS_FILE"]))
assert abs(params["lr"] - args.lr) < 1e-12
assert float(os.environ["THRIFTY_PARAM_LR"]) == args.lr
if args.mode == "slow":
    with open(os.path.join(ckpt, "pid.txt"), "w") as fh:
        fh.write(str(os.getpid()))
for epoch in range(1, args.epochs + 1):
    time.sleep(0.2 if args.mode == "slow" else 0.01)
    print(f"loading batch {epoch}...", flush=True)
    print(f"debug: grad_norm=1.{epoch}", file=sys.stderr, flush=True)
    print(f"epoch={epoch} train_loss={1 / epoch:.4f} val_acc={args.lr * epoch:.6f}", flush=True)
    if args.mode == "fail" and epoch == 2:
        print("Traceback: ValueError: exploding loss", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.mode == "oom" and epoch == 2:
        print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr, flush=True)
        time.sleep(600)
    if args.mode == "hang":
        time.sleep(600)
    marker = os.path.join(ckpt, "preempted-once")
    if args.mode == "preempt" and epoch == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
