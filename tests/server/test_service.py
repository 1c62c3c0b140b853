"""The HTTP service (``thrifty serve``) as a real process, over real HTTP: tokens and their
isolation, precise one-line errors, a restart that keeps every study and hands a reconnecting
client its trial back, the Python client running an objective unchanged, and the curl client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from _service import call, serve, token
from conftest import missing

import thrifty as th

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CURL_CLIENT = os.path.join(ROOT, "examples", "service", "curl_client.sh")


def objective(trial) -> float | None:
    """The same objective for a local and a remote study: reports two steps, may be stopped."""
    x = trial.params["x"]
    for step in (1, 2):
        trial.report((x - 0.3) ** 2 + 1.0 / step, step)
        if trial.should_stop():
            return None
    return (x - 0.3) ** 2


def test_tokens_open_one_study_each_and_roles_limit_what_they_do(sqlite_url):
    admin_a, admin_b = token(sqlite_url, "a", "admin"), token(sqlite_url, "b", "admin")
    read_a, write_a = token(sqlite_url, "a", "read"), token(sqlite_url, "a", "write")
    revoked = token(sqlite_url, "a", "admin")
    listed = subprocess.run([sys.executable, "-m", "thrifty", "token", "list", "--storage", sqlite_url],
                            capture_output=True, text=True, check=True).stdout
    assert admin_a not in listed and admin_a.split("_")[1] in listed  # ids listed, never a secret
    revoked_id = revoked.split("_")[1]
    subprocess.run([sys.executable, "-m", "thrifty", "token", "revoke", revoked_id, "--storage", sqlite_url],
                   capture_output=True, text=True, check=True)
    with serve(sqlite_url) as base:
        for name, admin in (("a", admin_a), ("b", admin_b)):
            status, _ = call(base, "POST", "/studies", {"name": name, "space": SPACE, "strategy": "random"}, admin)
            assert status == 201
        # No token, a malformed one, a revoked one: 401 with the header that says how to authenticate.
        assert call(base, "GET", "/studies/a")[0] == 401
        assert call(base, "GET", "/studies/a", token="thr_nonsense")[0] == 401
        assert call(base, "GET", "/studies/a", token=revoked)[0] == 401
        # A token lists and reads its own study only; another study is 404, as one that does not exist.
        assert [s["name"] for s in call(base, "GET", "/studies", token=admin_a)[1]["studies"]] == ["a"]
        other = call(base, "GET", "/studies/b", token=admin_a)
        missing = call(base, "GET", "/studies/zzz", token=admin_a)
        assert other[0] == missing[0] == 404
        assert "'b'" in other[1]["error"] and other[1]["error"].replace("'b'", "'zzz'") == missing[1]["error"]
        for path, body in (("/studies/b/suggest", {"count": 1}), ("/studies/b/trials/0/complete", {"value": 1.0}),
                           ("/studies/b/budget", None), ("/studies/b/trials", None)):
            assert call(base, "POST" if body else "GET", path, body, admin_a)[0] == 404, path
        assert call(base, "DELETE", "/studies/b", token=admin_a)[0] == 404
        status, answer = call(base, "POST", "/studies", {"name": "b2", "space": SPACE}, admin_a)
        assert status == 403 and "cannot create 'b2'" in answer["error"]
        # Roles: read reads, write runs trials, only admin deletes.
        assert call(base, "GET", "/studies/a", token=read_a)[0] == 200
        status, answer = call(base, "POST", "/studies/a/suggest", {"count": 1}, read_a)
        assert status == 403 and "'write'" in answer["error"]
        status, answer = call(base, "POST", "/studies/a/suggest", {"count": 1, "client_id": "w"}, write_a)
        assert status == 200 and [t["number"] for t in answer["trials"]] == [0]
        assert call(base, "POST", "/studies/a/trials/0/complete", {"value": 0.5}, write_a)[0] == 200
        assert call(base, "DELETE", "/studies/a", token=write_a)[0] == 403
        # Study b was never touched through a's tokens.
        status, info = call(base, "GET", "/studies/b", token=admin_b)
        assert status == 200 and info["counts"] == {}
        assert call(base, "DELETE", "/studies/b", token=admin_b) == (200, {"deleted": "b"})
        assert call(base, "GET", "/studies/b", token=admin_b)[0] == 404


def test_bad_input_is_a_precise_one_line_4xx_and_writes_nothing(sqlite_url):
    with serve(sqlite_url, no_auth=True) as base:
        assert call(base, "POST", "/studies", {"name": "s", "space": SPACE, "strategy": "random"})[0] == 201
        cases = [
            ("POST", "/studies", {"name": "bad", "space": {"x": {"type": "float", "low": 1, "high": 0}}}, 422, "x"),
            ("POST", "/studies", {"name": "bad", "space": SPACE, "budget": {"usd": -1}}, 422, "usd"),
            ("POST", "/studies", {"name": "bad", "space": SPACE, "strategy": "no-such"}, 422, "no-such"),
            ("POST", "/studies", {"name": "bad", "space": SPACE, "colour": "red"}, 422, "colour"),
            ("POST", "/studies", {"name": "s", "space": SPACE}, 409, "'s'"),
            ("POST", "/studies/s/suggest", {"count": 0}, 422, "count"),
            ("POST", "/studies/s/suggest", {"count": "2"}, 422, "count"),
            ("POST", "/studies/s/suggest", {"client_id": "a b"}, 422, "client_id"),
            ("POST", "/studies/nope/suggest", {"count": 1}, 404, "'nope'"),
            ("POST", "/studies/s/trials/7/complete", {"value": 1.0}, 409, "7"),
        ]
        for method, path, body, status, word in cases:
            got, answer = call(base, method, path, body)
            assert got == status, (path, body, answer)
            assert "\n" not in answer["error"] and word in answer["error"], answer
        got, answer = call(base, "POST", "/studies/s/suggest", raw=b"{not json")
        assert got == 422 and "not valid JSON" in answer["error"]
        assert [s["name"] for s in call(base, "GET", "/studies")[1]["studies"]] == ["s"]  # nothing written
        call(base, "POST", "/studies/s/suggest", {"client_id": "c"})
        for body, word in (({"metrics": "high"}, "metrics"), ({"metrics": 1.0, "step": -1}, "step"),
                           ({"metrics": 1.0, "elapsed_s": -2}, "elapsed_s"), ({"metrics": {"": 1.0}}, "metric")):
            got, answer = call(base, "POST", "/studies/s/trials/0/report", body)
            assert got == 422 and word in answer["error"] and "\n" not in answer["error"], (body, answer)
        assert call(base, "POST", "/studies/s/trials/0/report", {"metrics": 1.0, "step": 5})[0] == 200
        got, answer = call(base, "POST", "/studies/s/trials/0/report", {"metrics": 1.0, "step": 2})
        assert got == 422 and "must not decrease" in answer["error"]
        assert call(base, "GET", "/studies/s/trials/0")[1]["last_step"] == 5.0  # the refused report left no trace
        assert call(base, "POST", "/studies/s/trials/0/complete", {"value": 0.1})[0] == 200
        got, answer = call(base, "POST", "/studies/s/trials/0/complete", {"value": 0.2})
        assert got == 409 and "RUNNING" in answer["error"]


def test_no_auth_is_refused_off_loopback_and_serves_the_dashboard_on_it(sqlite_url):
    out = subprocess.run([sys.executable, "-m", "thrifty", "serve", "--storage", sqlite_url, "--no-auth",
                          "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1
    assert "--no-auth" in out.stderr and "loopback" in out.stderr
    with serve(sqlite_url, no_auth=True) as base:
        import urllib.request

        assert b"thrifty" in urllib.request.urlopen(base + "/", timeout=10).read()
        assert urllib.request.urlopen(base + "/api/studies", timeout=10).status == 200


def test_a_restarted_service_keeps_every_study_and_hands_a_client_its_trial_back(db_url, tmp_path):
    with serve(db_url, no_auth=True, cwd=str(tmp_path)) as base:
        one = th.Client(base, client_id="one")
        study = one.create_study(SPACE, "min", name="kept", strategy="random", seed=3)
        first = study.ask()
        first.report(0.9, 1)
        other = th.Client(base, client_id="two").load_study("kept").ask()
        assert other.number != first.number
        # The same client_id from a new process (a new Client) gets its RUNNING trial first...
        assert th.Client(base, client_id="one").load_study("kept").ask().number == first.number
        # ...and this object, which holds it, a new one: completed.
        study.tell(study.ask(), 0.5)
    with serve(db_url, no_auth=True, cwd=str(tmp_path)) as base:
        again = th.Client(base, client_id="one").load_study("kept")
        back = again.ask()
        assert (back.number, dict(back.params)) == (first.number, dict(first.params))
        assert back.last_step == 1.0
        back.report(0.7, 2)
        finished = again.tell(back, 0.4)
        assert finished.state is th.TrialState.COMPLETED and finished.number == first.number
        states = {t.number: t.state.value for t in again.trials}
        assert states == {first.number: "completed", other.number: "running", 2: "completed"}
        assert again.best.number == first.number and again.best.value == 0.4


def test_the_python_client_runs_an_objective_as_a_local_study_does(sqlite_url, tmp_path):
    settings = {"strategy": "random", "seed": 7, "scheduler": "none", "budget": {"trials": 6}}
    local = th.Study.create(SPACE, "min", name="local", storage=f"sqlite:///{tmp_path / 'local.db'}", **settings)
    local.optimize(objective, progress=False)
    with serve(sqlite_url, no_auth=True, cwd=str(tmp_path)) as base:
        remote = th.Client(base).create_study(SPACE, "min", name="remote", **settings)
        result = remote.optimize(objective)
        assert result.reason == "trials" and result.n_started == 6
        assert [(t.number, dict(t.params), t.value) for t in remote.trials] == [
            (t.number, dict(t.params), t.value) for t in local.trials]
        assert remote.best.number == local.best.number
        assert remote.budget.trials == 6 and remote.ledger()["study"] == "remote"


def test_the_curl_client_runs_a_study_end_to_end(sqlite_url, tmp_path):
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (apt-get install {tool})")
    admin = token(sqlite_url, "from-curl", "admin")
    with serve(sqlite_url, cwd=str(tmp_path)) as base:
        out = subprocess.run(["bash", CURL_CLIENT], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "THRIFTY_URL": base, "THRIFTY_TOKEN": admin,
                                  "THRIFTY_STUDY": "from-curl", "TRIALS": "5"}, check=False)
        assert out.returncode == 0, out.stderr
        status, trials = call(base, "GET", "/studies/from-curl/trials", token=admin)
        assert status == 200 and [t["state"] for t in trials["trials"]] == ["completed"] * 5
        assert "best" in out.stdout


def test_a_silent_client_loses_its_trial_to_the_reaper_and_its_retry_goes_to_another(sqlite_url, tmp_path):
    with serve(sqlite_url, no_auth=True, cwd=str(tmp_path)) as base:
        body = {"name": "s", "space": SPACE, "strategy": "random", "heartbeat_grace_s": 1.0, "max_retries": 1}
        assert call(base, "POST", "/studies", body)[0] == 201
        status, got = call(base, "POST", "/studies/s/suggest", {"client_id": "silent"})
        (first,) = got["trials"]
        # The service keeps no trial alive for a client: one that says nothing past the grace is reaped
        # (by the next ask of any client), and the copy goes to whoever asks next.
        import time

        time.sleep(1.5)
        status, again = call(base, "POST", "/studies/s/suggest", {"client_id": "other"})
        assert status == 200
        (retry,) = again["trials"]
        assert retry["retry_of"] == first["number"] and retry["params"] == first["params"]
        status, answer = call(base, "POST", f"/studies/s/trials/{first['number']}/complete", {"value": 1.0})
        assert status == 409 and "already failed" in answer["error"] and "no heartbeat" in answer["error"]
        trial = call(base, "GET", f"/studies/s/trials/{first['number']}")[1]
        assert trial["state"] == "failed" and trial["worker_id"] == "service:silent"
        # A client that keeps its trial alive (heartbeats) keeps it.
        status, kept = call(base, "POST", "/studies/s/suggest", {"client_id": "alive"})
        number = kept["trials"][0]["number"]
        for _ in range(4):
            time.sleep(0.5)
            assert call(base, "POST", "/studies/s/heartbeat", {"trials": [number]})[1] == {"running": [number]}
        call(base, "POST", "/studies/s/suggest", {"client_id": "other2"})  # an ask: the reaper runs
        assert call(base, "POST", f"/studies/s/trials/{number}/complete", {"value": 0.5})[0] == 200
