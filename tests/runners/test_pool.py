"""Resource slots: one GPU per worker, CPU pinning, and the limits of the machine."""

from __future__ import annotations

import os

import pytest

import thrifty as th
from thrifty.runners.pool import Slot, plan_slots


def test_one_gpu_per_trial_on_four_gpus_gives_four_slots():
    slots = plan_slots({"gpu": 1}, n_workers=None, gpus=[0, 1, 2, 3])
    assert [s.gpus for s in slots] == [("0",), ("1",), ("2",), ("3",)]
    assert len(plan_slots({"gpu": 2}, n_workers=None, gpus=[0, 1, 2, 3])) == 2
    assert [s.gpus for s in plan_slots({"gpu": 0.5}, n_workers=None, gpus=["a"])] == [("a",), ("a",)]
    assert len(plan_slots({"gpu": 1}, n_workers=2, gpus=[0, 1, 2, 3])) == 2


def test_no_gpu_visible_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(th.ValidationError, match="no GPU is visible"):
        plan_slots({"gpu": 1}, n_workers=2)
    with pytest.raises(th.ValidationError, match="only 2 are visible"):
        plan_slots({"gpu": 3}, n_workers=None, gpus=[0, 1])
    with pytest.raises(th.ValidationError, match="1/k"):
        plan_slots({"gpu": 0.3}, n_workers=None, gpus=[0])


def test_cpu_slots_follow_the_affinity_mask():
    cores = sorted(os.sched_getaffinity(0))
    slots = plan_slots({"cpu": 1}, n_workers=None)
    assert [s.cpus for s in slots] == [(c,) for c in cores]
    with pytest.raises(th.ValidationError, match="CPU cores"):
        plan_slots({"cpu": len(cores) + 1}, n_workers=None)


def test_plain_slots_without_resources_share_the_cores_between_threads():
    cores = len(os.sched_getaffinity(0))
    assert plan_slots({}, n_workers=3) == [Slot(threads=max(1, cores // 3))] * 3
    assert plan_slots({}, n_workers=None) == [Slot()]  # one worker: its libraries keep every core


def test_a_worker_slot_limits_the_blas_threads_of_its_process(sqlite_url):
    """A forked worker's numpy already read OPENBLAS_NUM_THREADS; the slot must still limit it."""
    study = th.Study.create({"x": th.Float(0, 1)}, storage=sqlite_url)

    def objective(trial):
        from threadpoolctl import threadpool_info

        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        return {"value": float(max(blas)), "env": float(os.environ["OPENBLAS_NUM_THREADS"])}

    study.optimize(objective, n_trials=2, n_workers=2, progress=False)
    cores = len(os.sched_getaffinity(0))
    for t in study.trials:
        assert t.metrics["value"] == max(1, cores // 2) == t.metrics["env"]


def test_workers_see_only_their_own_gpu(sqlite_url):
    study = th.Study.create({"x": th.Float(0, 1)}, storage=sqlite_url, resources={"gpu": 1}, pricing={"gpu": "t4"})

    def objective(trial):
        import time

        time.sleep(0.2)  # long enough that all four workers take trials
        return {"value": float(os.environ["CUDA_VISIBLE_DEVICES"])}

    study.optimize(objective, n_trials=12, n_workers=8, gpus=[0, 1, 2, 3], progress=False)
    by_worker = {}
    for t in study.trials:
        by_worker.setdefault(t.worker_id, set()).add(t.value)
    assert len(by_worker) == 4, "no more workers than GPUs"
    assert all(len(gpus) == 1 for gpus in by_worker.values()), "a worker always sees the same single GPU"
    assert set().union(*by_worker.values()) == {0.0, 1.0, 2.0, 3.0}
    # Each trial held one T4: GPU-hours are elapsed seconds / 3600.
    usage = study.usage()
    assert usage.gpu_hours == pytest.approx(sum(t.elapsed_s for t in study.trials) / 3600, rel=1e-6)
