"""Command stages (a stage that runs a program in a stage folder), with real programs and files:
``thrifty run`` of a YAML pipeline whose first stage is a command, read from the memo cache by the
next run; a stopped stage is never cached; a failing stage's stderr reaches the trial's error; bad
command-stage configs are one-line errors that write nothing."""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from pathlib import Path

import pytest
from _cli import assert_one_line_error, thrifty

import thrifty as th
from thrifty.pipelines import DiskCache

PY = shlex.quote(sys.executable)

#: The first stage: writes two files into its output folder and counts its runs in prep_runs.txt.
PREP = '''
import json, os, pathlib, sys
assert "THRIFTY_STAGE_INPUT" not in os.environ, "the first stage has no input"
out = pathlib.Path(os.environ["THRIFTY_STAGE_OUTPUT"])
assert out == pathlib.Path(sys.argv[sys.argv.index("--out") + 1]) and not any(out.iterdir()), "a fresh folder"
n = int(sys.argv[sys.argv.index("--n") + 1])
assert json.load(open(os.environ["THRIFTY_PARAMS_FILE"])) == {"n": n}, "only the stage's own parameters"
assert os.environ["THRIFTY_PARAM_N"] == str(n) and "THRIFTY_PARAM_LR" not in os.environ
(out / "rows.txt").write_text(" ".join(str(i) for i in range(n)))
(out / "sub").mkdir()
(out / "sub" / "meta.txt").write_text(str(n))
with open("prep_runs.txt", "a") as f:
    f.write(f"{n}\\n")
'''

#: The second stage, a function: gets the path of the first stage's (cached) output folder.
STAGES = '''
from pathlib import Path


def train(params, data):
    assert isinstance(data, Path), data
    rows = [int(x) for x in (data / "rows.txt").read_text().split()]
    return {"total": sum(rows) * params["lr"], "n": int((data / "sub" / "meta.txt").read_text())}
'''

#: The last stage: reads the function stage's output from input.pkl, prints the metric.
EVALUATE = '''
import os, pathlib, pickle, sys
given = pathlib.Path(os.environ["THRIFTY_STAGE_INPUT"])
assert given == pathlib.Path(sys.argv[sys.argv.index("--input") + 1])
data = pickle.load(open(given / "input.pkl", "rb"))
t = float(os.environ["THRIFTY_PARAM_T"])
(pathlib.Path(os.environ["THRIFTY_STAGE_OUTPUT"]) / "report.txt").write_text(repr(data))
print(f"f1={data['total'] * t} n={data['n']}")
'''

CONFIG = f'''
name: cmdpipe
objective: {{f1: max}}
strategy: grid
scheduler: none
pricing: {{local: 3.6}}
pipeline:
  cache_dir: cache
  stages:
    - {{name: prep, command: "{PY} prep.py --n {{n}} --out {{stage_output}}", space: {{n: 3}}}}
    - {{name: train, function: "stages:train", space: {{lr: [0.5, 0.25]}}}}
    - name: eval
      command: "{PY} evaluate.py --t {{t}} --input {{stage_input}}"
      space: {{t: 0.5}}
      metrics: {{f1: {{regex: "f1=([0-9.eE+-]+)", goal: max}}, n: "n=([0-9]+)"}}
'''


def _write_project(folder: Path, config: str = CONFIG) -> None:
    (folder / "prep.py").write_text(PREP)
    (folder / "stages.py").write_text(STAGES)
    (folder / "evaluate.py").write_text(EVALUATE)
    (folder / "cmdpipe.yaml").write_text(config)


def test_thrifty_run_caches_a_command_stage_and_the_next_run_reads_it(tmp_path: Path) -> None:
    _write_project(tmp_path)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    thrifty("run", "cmdpipe.yaml", "--storage", url, "--n-trials", "1", "--no-progress", cwd=tmp_path)
    assert (tmp_path / "prep_runs.txt").read_text() == "3\n"
    study = th.Study.load("cmdpipe", storage=url)
    first = study.trials[0]
    study.close()
    assert first.state is th.TrialState.COMPLETED, first.error
    assert first.metrics["f1"] == pytest.approx(3 * first.params["lr"] * 0.5) and first.metrics["n"] == 3
    cache = DiskCache(tmp_path / "cache")
    entries = cache.entries()  # prep's folder, and train's output (a Python object: a file)
    [(key, size)] = [(k, size) for k, size, _ in entries if cache.path(k).is_dir()]
    assert len(entries) == 2
    entry = cache.path(key)
    assert (entry / "data" / "rows.txt").read_text() == "0 1 2"
    data_bytes = len("0 1 2") + len("3")
    assert size == data_bytes + (entry / "header.json").stat().st_size, "the size counts every file"
    trial_dir = tmp_path / "thrifty_artifacts" / "cmdpipe" / "trial-00000"
    assert (trial_dir / "stage-0-prep" / "params.json").exists()
    assert not (trial_dir / "stage-0-prep" / "output").exists(), "the output folder was moved into the cache"
    assert "'total'" in (trial_dir / "stage-2-eval" / "output" / "report.txt").read_text()

    # A second run of the same config resumes the study; its trial keeps prep's parameters.
    thrifty("run", "cmdpipe.yaml", "--storage", url, "--n-trials", "1", "--no-progress", cwd=tmp_path)
    assert (tmp_path / "prep_runs.txt").read_text() == "3\n", "prep's command did not run again"
    study = th.Study.load("cmdpipe", storage=url)
    second = study.trials[1]
    assert second.state is th.TrialState.COMPLETED, second.error
    assert second.metrics["f1"] == pytest.approx(3 * second.params["lr"] * 0.5)
    outcomes = [(r.name, r.outcome) for r in study.storage.stage_runs(study.id) if r.trial_id == second.id]
    assert outcomes[0] in {("prep", "hit"), ("prep", "skipped")} and ("prep", "run") not in outcomes
    assert not (tmp_path / "thrifty_artifacts" / "cmdpipe" / "trial-00001" / "stage-0-prep").exists()
    study.close()


def _slow_stage_script(folder: Path) -> Path:
    script = folder / "slow_prep.py"
    script.write_text(
        "import os, pathlib, sys, time\n"
        "(pathlib.Path(os.environ['THRIFTY_STAGE_OUTPUT']) / 'partial.txt').write_text('half')\n"
        "print('progress=1', flush=True)\n"
        "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n")
    return script


def test_a_stopped_command_stage_is_terminated_and_never_cached(tmp_path: Path) -> None:
    started = tmp_path / "started"
    cache_dir = tmp_path / "cache"
    pipe = th.Pipeline([
        th.Stage("prep", command=[sys.executable, str(_slow_stage_script(tmp_path)), str(started)],
                 space={"n": th.Int(1, 4)}, metrics={"progress": r"progress=(\d+)"}, grace_s=2),
        th.Stage("eval", lambda p, data: {"f1": 1.0}, space={"t": th.Float(0.1, 0.9)}),
    ], cache_dir=str(cache_dir))
    study = th.Study.create(pipeline=pipe, objective={"f1": "max"}, storage="memory", strategy="random",
                            scheduler=None, artifact_root=str(tmp_path / "artifacts"))

    def stop_when_started() -> None:
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        study.stop_trial(0)

    threading.Thread(target=stop_when_started, daemon=True).start()
    began = time.monotonic()
    study.optimize(n_trials=1, progress=False)
    assert time.monotonic() - began < 8, "stopped within the poll interval, not after the program's 60 s"
    t = study.trials[0]
    assert t.state is th.TrialState.STOPPED and t.reason.startswith("user"), (t.state, t.reason, t.error)
    with pytest.raises(ProcessLookupError):
        os.kill(int(started.read_text()), 0)  # the program is really gone
    assert DiskCache(cache_dir).entries() == [] and study.storage.cache_entries(study.id) == []
    assert not cache_dir.exists() or not os.listdir(cache_dir), "no entry and no temporary left"
    runs = [(r.name, r.outcome) for r in study.storage.stage_runs(study.id)]
    assert runs == [("prep", "run")], "the trial ended in the stopped stage"
    stage_dir = tmp_path / "artifacts" / study.name / "trial-00000" / "stage-0-prep"
    assert (stage_dir / "output" / "partial.txt").read_text() == "half", "the partial output stays the trial's"
    study.close()


def test_a_failing_command_stage_fails_the_trial_with_its_stderr_tail(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text(
        "import os, pathlib, pickle, sys\n"
        "data = pickle.load(open(pathlib.Path(os.environ['THRIFTY_STAGE_INPUT']) / 'input.pkl', 'rb'))\n"
        "print(f'read rows={data[\"rows\"]}', file=sys.stderr)\n"
        "print('ValueError: boom, the input is bad', file=sys.stderr)\n"
        "sys.exit(3)\n")
    cache_dir = tmp_path / "cache"
    pipe = th.Pipeline([
        th.Stage("prep", lambda p, data: {"rows": list(range(p["n"]))}, space={"n": th.Int(1, 4)}),
        th.Stage("score", command=f"{PY} {shlex.quote(str(script))} {{t}}", space={"t": th.Float(0.1, 0.9)},
                 metrics={"f1": {"regex": r"f1=([0-9.]+)", "goal": "max"}}),
    ], cache_dir=str(cache_dir))
    study = th.Study.create(pipeline=pipe, objective={"f1": "max"}, storage="memory", strategy="random",
                            scheduler=None, artifact_root=str(tmp_path / "artifacts"))
    study.enqueue({"n": 2, "t": 0.5})
    study.optimize(n_trials=1, progress=False, max_consecutive_failures=None)
    t = study.trials[0]
    assert t.state is th.TrialState.FAILED
    assert "the program exited with status 3" in t.error
    assert "read rows=[0, 1]" in t.error and "ValueError: boom, the input is bad" in t.error
    stage_dir = tmp_path / "artifacts" / study.name / "trial-00000" / "stage-1-score"
    assert "boom" in (stage_dir / "stderr.log").read_text()
    assert (stage_dir / "input" / "input.pkl").exists(), "a function stage's output reaches a command as a pickle"
    study.close()


def test_an_objective_the_last_command_stage_does_not_print_fails_before_any_stage_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    pipe = th.Pipeline([
        th.Stage("prep", command=[sys.executable, "-c", f"open({str(ran)!r}, 'w').close()"],
                 space={"n": th.Int(1, 3)}),
        th.Stage("score", command=[sys.executable, "-c", "print('acc=1')"], metrics={"acc": r"acc=([0-9.]+)"}),
    ], cache_dir=str(tmp_path / "cache"))
    study = th.Study.create(pipeline=pipe, objective={"f1": "max"}, storage="memory", strategy="random",
                            scheduler=None, artifact_root=str(tmp_path / "artifacts"))
    study.optimize(n_trials=1, progress=False, max_consecutive_failures=None)
    t = study.trials[0]
    assert t.state is th.TrialState.FAILED
    assert "Stage 'score' (the last stage, whose metrics are the trial's result): objective 'f1' is not one of " \
           "the metrics read from the program's output (acc)" in t.error
    assert not ran.exists() and study.storage.stage_runs(study.id) == []
    study.close()


def test_stage_definitions_are_checked_when_built() -> None:
    with pytest.raises(th.ValidationError, match="give function= or command=, not both"):
        th.Stage("a", lambda p, d: d, command="python x.py")
    with pytest.raises(th.ValidationError, match="give function= .* or command="):
        th.Stage("a")
    with pytest.raises(th.ValidationError, match="metrics, timeout_s only apply to a command stage"):
        th.Stage("a", lambda p, d: d, metrics={"f1": "f1=([0-9.]+)"}, timeout_s=3)
    with pytest.raises(th.ValidationError, match=r"^Stage 'a': command: unknown placeholder \{lr\}"):
        th.Stage("a", command="python x.py --lr {lr}", space={"n": th.Int(1, 3)})
    with pytest.raises(th.ValidationError, match="is the first stage: it has no input"):
        th.Pipeline([th.Stage("a", command="python x.py {stage_input}"), th.Stage("b", lambda p, d: {"f1": 1})])
    with pytest.raises(th.ValidationError, match="is the last stage and runs a command: give it metrics"):
        th.Pipeline([th.Stage("a", lambda p, d: d), th.Stage("b", command="python x.py {stage_input}")])
    # Positional function stages still work, and a command stage's runner is built.
    stage = th.Stage("p", lambda p, d: d, {"n": th.Int(1, 3)}, 2, False)
    assert stage.runner is None and stage.version == 2 and stage.cache is False
    assert th.Stage("c", command="python x.py {stage_output}").runner is not None


BAD = [
    ("both", CONFIG.replace('command: "', 'function: "stages:train", command: "', 1),
     "pipeline stage 0 ('prep'): both function and command"),
    ("placeholder", CONFIG.replace("--n {n}", "--n {lr}"), "Stage 'prep': command: unknown placeholder {lr}"),
    ("first-input", CONFIG.replace("--n {n}", "--n {n} {stage_input}"), "'prep' is the first stage: it has no input"),
    ("no-metrics", CONFIG.replace('      metrics: {f1: {regex: "f1=([0-9.eE+-]+)", goal: max}, n: "n=([0-9]+)"}\n', ""),
     "Stage 'eval' is the last stage and runs a command: give it metrics"),
    ("objective", CONFIG.replace("objective: {f1: max}", "objective: {acc: max}"),
     "Stage 'eval' (the last stage, whose metrics are the trial's result): objective 'acc' is not one of the metrics"),
    ("function-options", CONFIG.replace('function: "stages:train",', 'function: "stages:train", timeout_s: 5,'),
     "pipeline stage 1 ('train'): timeout_s only apply with 'command'"),
    ("bad-regex", CONFIG.replace('regex: "f1=([0-9.eE+-]+)"', 'regex: "f1=[0-9]+"'),
     "Stage 'eval': metric 'f1': the regex 'f1=[0-9]+' needs a (group)"),
]


@pytest.mark.parametrize("config, fragment", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_command_stage_config_is_one_line_and_writes_nothing(tmp_path: Path, config: str, fragment: str) -> None:
    _write_project(tmp_path, config)
    before = set(os.listdir(tmp_path))
    p = thrifty("run", "cmdpipe.yaml", "--storage", f"sqlite:///{tmp_path / 'p.db'}", cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, fragment)
    assert set(os.listdir(tmp_path)) - {"__pycache__"} == before, "no database, no artifacts, no cache"
