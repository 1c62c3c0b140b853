"""Resource use per trial (thrifty.usage, thrifty.runners.sampling): the pure summary on made-up
samples, the sampler on real processes, and real studies whose stored trials carry what their
objective's processes used (CPU, resident memory), through the local and the script runner."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

import thrifty as th
from thrifty.analysis.report import cost_report
from thrifty.cli import main as thrifty_main
from thrifty.runners.sampling import UsageSampler, visible_gpu_ids
from thrifty.usage import GPU_IDLE_FLAG_SHARE, GPU_IDLE_UTIL_PERCENT, ResourceUsage, Sample, summarize

MB = 2**20
#: What the test workloads allocate (and touch) while they run.
ALLOC_MB = 200


# -- the pure summary ---------------------------------------------------------------------------
def test_summary_weights_cpu_by_time_and_keeps_the_peaks() -> None:
    samples = [Sample(0.2, 50.0, 100.0), Sample(1.0, 100.0, 300.0), Sample(1.0, 200.0, 250.0)]
    u = summarize(samples, interval_s=1.0)
    assert u is not None
    assert (u.samples, u.interval_s, u.duration_s) == (3, 1.0, pytest.approx(2.2))
    assert u.cpu_percent_mean == pytest.approx((0.2 * 50 + 100 + 200) / 2.2)
    assert (u.cpu_percent_max, u.rss_mb_max) == (200.0, 300.0)
    assert (u.gpus, u.gpu_util_percent_mean, u.gpu_memory_mb_max, u.gpu_idle_share) == (0, None, None, None)
    assert not u.gpu_idle, "no GPU: never flagged"
    assert summarize([], 1.0) is None


def test_a_gpu_idle_most_of_the_time_is_flagged() -> None:
    # Two GPUs read four times: 5 of the 8 readings below 5% (GPU_IDLE_UTIL_PERCENT; exactly 5% is not).
    utils = [(0.0, 90.0), (1.0, 80.0), (4.9, GPU_IDLE_UTIL_PERCENT), (0.0, 2.0)]
    samples = [Sample(1.0, 30.0, 500.0, u, (1000.0, 2000.0 + 100 * i)) for i, u in enumerate(utils)]
    u = summarize(samples, 1.0)
    assert u is not None and u.gpus == 2
    assert u.gpu_idle_share == pytest.approx(5 / 8)
    assert u.gpu_util_percent_mean == pytest.approx(sum(sum(x) for x in utils) / 8)
    assert u.gpu_memory_mb_max == pytest.approx(1000.0 + 2300.0), "the most in use at once, summed over GPUs"
    assert GPU_IDLE_FLAG_SHARE == 0.5 and u.gpu_idle, "half the readings idle: flagged"
    busy = summarize([Sample(1.0, 30.0, 500.0, (60.0,), (10.0,)), Sample(1.0, 30.0, 500.0, (0.0,), (10.0,)),
                      Sample(1.0, 30.0, 500.0, (70.0,), (10.0,))], 1.0)
    assert busy is not None and busy.gpu_idle_share == pytest.approx(1 / 3) and not busy.gpu_idle
    # Readings are weighed by their window: a short idle one counts for little.
    weighted = summarize([Sample(0.2, 0.0, 1.0, (0.0,), (1.0,)), Sample(1.0, 0.0, 1.0, (50.0,), (1.0,))], 1.0)
    assert weighted is not None and weighted.gpu_idle_share == pytest.approx(0.2 / 1.2)


def test_usage_round_trips_through_json_and_is_validated() -> None:
    u = summarize([Sample(1.0, 80.0, 120.0, (3.0,), (512.0,))], 1.0)
    assert u is not None and ResourceUsage.from_dict(json.loads(json.dumps(u.to_dict()))) == u
    good = u.to_dict()
    for bad in ({**good, "cpu_percent_max": -1.0}, {**good, "samples": 0}, {**good, "gpu_idle_share": 1.5},
                {**good, "gpus": 0}, {**good, "rss_mb_max": float("nan")}, {**good, "surprise": 1},
                {**good, "cpu_percent_mean": 99.0}, {**good, "samples": True}):
        with pytest.raises(th.ValidationError, match="usage"):
            ResourceUsage.from_dict(bad)
    with pytest.raises(th.ValidationError, match="usage"):
        th.Trial(number=0, state="completed", params={}, usage={"samples": 1})


def test_a_resumed_trials_runs_combine() -> None:
    first = summarize([Sample(1.0, 100.0, 300.0, (0.0,), (100.0,))], 1.0)
    later = summarize([Sample(3.0, 20.0, 200.0, (80.0,), (400.0,))], 1.0)
    assert first is not None and later is not None
    both = first.combined(later)
    assert (both.samples, both.duration_s, both.cpu_percent_max, both.rss_mb_max) == (2, 4.0, 100.0, 300.0)
    assert both.cpu_percent_mean == pytest.approx((100 + 3 * 20) / 4)
    assert (both.gpu_idle_share, both.gpu_memory_mb_max) == (pytest.approx(0.25), 400.0)


def test_visible_gpus_follow_cuda_visible_devices() -> None:
    assert visible_gpu_ids(None, 3) == [0, 1, 2]
    assert visible_gpu_ids("", 3) == []
    assert visible_gpu_ids("2,0", 3) == [2, 0]
    assert visible_gpu_ids("1,-1,2", 3) == [1], "CUDA stops at the first entry that names no device"
    assert visible_gpu_ids("0,7", 2) == [0]
    assert visible_gpu_ids("GPU-5d1c, MIG-0a2b", 1) == ["GPU-5d1c"]


# -- the sampler on real processes ---------------------------------------------------------------
def test_the_sampler_reads_a_process_tree_and_hands_out_summaries_while_it_runs() -> None:
    code = (f"import time; b = bytearray(b'x') * {ALLOC_MB * MB}; end = time.time() + 1.2\n"
            "while time.time() < end: pass")
    child = subprocess.Popen([sys.executable, "-c", code])
    updates: list[ResourceUsage] = []
    sampler = UsageSampler(child.pid, interval_s=0.25, first_s=0.05, update_every_s=0.3,
                           on_update=updates.append).start()
    child.wait(timeout=30)
    time.sleep(0.1)
    usage = sampler.stop()
    assert usage is not None and usage.samples >= 3
    assert usage.cpu_percent_max > 50 and usage.rss_mb_max > ALLOC_MB * 0.9
    assert updates and updates[-1].samples <= usage.samples, "summaries reach on_update while it runs"
    assert sampler.stop() == usage, "stopping again changes nothing"


def test_a_process_that_cannot_be_read_gives_no_usage_and_no_error() -> None:
    gone = psutil.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert UsageSampler(gone.pid, first_s=0.01).start().stop() is None


# -- real studies ----------------------------------------------------------------------------------
def _tree_rss_mb() -> float:
    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / MB


def busy_loop(seconds: float = 1.5) -> float:
    """Keep a core busy for ``seconds``; returns the CPU percent this process got meanwhile by its
    own clock (a loaded machine gives it less than 100)."""
    import time

    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < start + seconds:
        pass
    return 100 * (time.process_time() - cpu) / (time.perf_counter() - start)


def _check_cpu(u: ResourceUsage, seen: float) -> None:
    """The sampler saw the busy loop: the busiest reading is near what the process got, and above
    50% of a core unless the machine was too loaded to give it 75%."""
    assert u.cpu_percent_max > 0.7 * seen, (seen, u)
    assert u.cpu_percent_max > 50 or seen < 75, (seen, u)


def busy_objective(trial: th.TrialHandle) -> dict[str, float]:
    """Holds ALLOC_MB of touched memory while it keeps a core busy for 1.5 s; reports the
    resident memory its process had before (MB) and the CPU it got (percent of a core)."""
    before = psutil.Process().memory_info().rss / MB
    held = bytearray(b"x") * (ALLOC_MB * MB)
    seen = busy_loop()
    return {"value": trial.params["x"] + len(held) * 0.0, "rss_before_mb": before, "cpu_seen": seen}


@pytest.mark.parametrize("in_worker", [False, True], ids=["in-process", "worker-process"])
def test_a_local_run_stores_what_each_trial_used(tmp_path: Path, in_worker: bool) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, {"value": "max"}, name="busy", storage=url)
    # trial_timeout_s runs the trial in a worker process (a fork), even with one worker.
    study.optimize(busy_objective, n_trials=1, progress=False, trial_timeout_s=60 if in_worker else None)
    study.close()
    [t] = th.Study.load("busy", storage=url).trials
    assert t.state is th.TrialState.COMPLETED and t.usage is not None, t
    u = t.usage
    _check_cpu(u, t.metrics["cpu_seen"])
    assert u.rss_mb_max > 150 and u.rss_mb_max > t.metrics["rss_before_mb"] + ALLOC_MB * 0.75, u
    assert u.samples >= 2 and u.duration_s > 1.0


def test_a_script_trial_counts_the_programs_its_command_starts(tmp_path: Path) -> None:
    child = f"{inspect.getsource(busy_loop)}\nb = bytearray(b'x') * {ALLOC_MB * MB}\nprint(f'cpu_seen={{busy_loop()}}')"
    program = tmp_path / "train.py"
    program.write_text(textwrap.dedent(f"""\
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {child!r}], check=True)
        print("score=0.5")
        """))
    objective = th.ScriptObjective([sys.executable, str(program), "--lr", "{lr}"],
                                   {"score": {"regex": r"score=([0-9.]+)", "goal": "max"},
                                    "cpu_seen": {"regex": r"cpu_seen=([0-9.]+)"}})
    url = f"sqlite:///{tmp_path / 'script.db'}"
    study = th.Study.create({"lr": th.Float(0.01, 0.1)}, {"score": "max"}, name="script", storage=url,
                            artifact_root=str(tmp_path / "artifacts"))
    before = _tree_rss_mb()
    study.optimize(objective, n_trials=1, progress=False)
    study.close()
    [t] = th.Study.load("script", storage=url).trials
    assert t.state is th.TrialState.COMPLETED and t.usage is not None
    _check_cpu(t.usage, t.metrics["cpu_seen"])
    assert t.usage.rss_mb_max > 150 and t.usage.rss_mb_max > before + ALLOC_MB * 0.75, (before, t.usage)


# -- the report --------------------------------------------------------------------------------------
def _gpu_usage(idle_share: float) -> ResourceUsage:
    return ResourceUsage(samples=10, interval_s=1.0, duration_s=10.0, cpu_percent_mean=20.0, cpu_percent_max=90.0,
                         rss_mb_max=800.0, gpus=1, gpu_util_percent_mean=100 * (1 - idle_share),
                         gpu_memory_mb_max=4096.0, gpu_idle_share=idle_share)


def test_the_cost_report_lists_the_trials_whose_gpu_sat_idle(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, {"value": "max"}, name="gpus", storage=url)
    # (usage, dollars): idle 90%, busy, idle exactly half the time, none recorded, no GPU.
    plan = [(_gpu_usage(0.9), 1.25), (_gpu_usage(0.1), 2.0), (_gpu_usage(0.5), 0.5), (None, 4.0),
            (ResourceUsage(samples=1, interval_s=1.0, duration_s=1.0, cpu_percent_mean=5.0, cpu_percent_max=5.0,
                           rss_mb_max=50.0), 1.0)]
    for i, (usage, usd) in enumerate(plan):
        handle = study.ask()
        if usage is not None:
            assert study.storage.record_usage(handle.id, usage)
        study.tell(handle, 1.0 if i == 0 else 0.5, cost_usd=usd)
    report = cost_report(study)
    assert report.idle_gpu_trials == (0, 2) and report.idle_gpu_usd == pytest.approx(1.75)
    assert [(t.number, t.gpu_idle) for t in report.trials] == [(0, True), (1, False), (2, True), (3, False),
                                                              (4, False)]
    assert report.trials[1].usage == _gpu_usage(0.1) and report.trials[3].usage is None
    as_json = json.loads(json.dumps(report.to_dict()))
    assert (as_json["idle_gpu_trials"], as_json["idle_gpu_usd"]) == ([0, 2], pytest.approx(1.75))
    assert as_json["trials"][0]["usage"] == _gpu_usage(0.9).to_dict() and as_json["trials"][0]["gpu_idle"]
    study.close()

    monkeypatch.setenv("COLUMNS", "250")
    assert thrifty_main(["report", "gpus", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "2 trials held a GPU that sat idle most of the time: $1.7500 (trials 0, 2;" in out
    assert thrifty_main(["report", "gpus", "--storage", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["idle_gpu_trials"] == [0, 2]
    assert thrifty_main(["best", "gpus", "--storage", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["usage"] == _gpu_usage(0.9).to_dict()


def test_a_sampler_thread_never_outlives_its_trial(tmp_path: Path) -> None:
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, storage="memory")
    study.optimize(lambda t: t.params["x"], n_trials=3, progress=False)
    assert all(t.usage is not None and t.usage.samples >= 1 for t in study.trials), "a short trial gets a reading"
    assert not [t for t in threading.enumerate() if t.name.startswith("thrifty-usage")]
