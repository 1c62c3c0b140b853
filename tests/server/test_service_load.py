"""The service under concurrent clients on PostgreSQL: 32 client threads x 200 suggest/complete
cycles through a real ``thrifty serve`` over real HTTP. No trial is handed out twice, every trial
is completed exactly once; p50/p99 latencies are logged (measured in
``benchmarks/scale_service.py``, not asserted here). About 40 s on two cores."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from _service import serve, token

import thrifty as th

CLIENTS = 32
log = logging.getLogger(__name__)


CYCLES = 200


def test_32_clients_never_share_a_trial_and_complete_each_once(pg_url, tmp_path):
    admin = token(pg_url, "load", "admin")
    with serve(pg_url, cwd=str(tmp_path)) as base:
        th.Client(base, admin).create_study({"x": {"type": "float", "low": 0.0, "high": 1.0}}, "min", name="load",
                                            strategy="random", scheduler="none")
        handed: list[list[int]] = [[] for _ in range(CLIENTS)]
        latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
        errors: list[BaseException] = []

        def client(i: int) -> None:
            api = th.Client(base, admin, client_id=f"c{i}")
            try:
                for _ in range(CYCLES):
                    t0 = time.perf_counter()
                    answer = api.request("POST", "/studies/load/suggest", {"count": 1, "client_id": api.client_id})
                    t1 = time.perf_counter()
                    (trial,) = answer["trials"]
                    number = trial["number"]
                    done = api.request("POST", f"/studies/load/trials/{number}/complete",
                                       {"value": (trial["params"]["x"] - 0.5) ** 2})
                    t2 = time.perf_counter()
                    assert done["state"] == "completed" and done["worker_id"] == f"service:c{i}"
                    handed[i].append(number)
                    latencies[i] += [t1 - t0, t2 - t1]
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall_s = time.perf_counter() - started
        assert not errors, errors[:3]
        numbers = [n for per_client in handed for n in per_client]
        assert len(numbers) == CLIENTS * CYCLES
        twice = [n for n, k in Counter(numbers).items() if k > 1]
        assert not twice, f"trials handed out more than once: {twice[:10]}"
        stored = th.Client(base, admin).load_study("load").trials
        assert sorted(t.number for t in stored) == sorted(numbers) == list(range(CLIENTS * CYCLES))
        assert Counter(t.state.value for t in stored) == {"completed": CLIENTS * CYCLES}
        assert all(t.worker_id == f"service:c{i}" for i, per in enumerate(handed) for t in
                   (stored[n] for n in per))
    every = sorted(x for per in latencies for x in per)
    p50, p99 = every[len(every) // 2], every[int(len(every) * 0.99)]
    message = (f"service on PostgreSQL, {CLIENTS} clients x {CYCLES} suggest/complete cycles: {wall_s:.1f} s, "
               f"{CLIENTS * CYCLES / wall_s:.0f} cycles/s, request latency p50 {p50 * 1000:.1f} ms, "
               f"p99 {p99 * 1000:.1f} ms")
    log.warning(message)
    print(message)
