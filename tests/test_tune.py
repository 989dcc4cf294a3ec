"""bench tune: search-space validation, studies, pruning, resumption, workers, fair comparison."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from bench.config import load_suite, read_override_file

TUNE_SUITE = """
description = "tiny tuning suite for tests"
seeds = [0]
datasets = ["8gaussians"]
metrics = ["energy_distance", "modes_captured"]

[budget]
gen_steps = 30

[eval]
every = 10
num_samples = 200
diag_samples = 64
hist_bins = 11

[train]
batch_size = 32
workers = 1
threads = 1

[tracking]
enabled = false

[variant_defaults]
width = 16

[variants.wgan]

[variants.wgan_gp]
gp_weight = 0.1

[tuning]
objective = "energy_distance"
pruner = "median"
startup_trials = 1
trials = 4
final_seeds = 2
heartbeat_seconds = 1

[tuning.space.wgan]
lr = {type = "float", low = 1e-6, high = 1e-2, log = true}
n_critic = {type = "int", low = 1, high = 3}

[tuning.space.wgan_gp]
lr = {type = "float", low = 1e-6, high = 1e-2, log = true}
betas = {type = "categorical", choices = [[0.0, 0.9], [0.5, 0.9]]}
"""


def replace(old: str, new: str) -> str:
    assert old in TUNE_SUITE
    return TUNE_SUITE.replace(old, new)


BAD_TUNING = {
    "objective not a suite metric": (
        replace('objective = "energy_distance"', 'objective = "mode_kl"'),
        "key 'tuning.objective': 'mode_kl' is neither a metric nor a column that this suite's "
        "metrics and backbones fill on '8gaussians'; they fill: energy_distance, modes_captured",
    ),
    "unknown entry": (
        replace("[tuning.space.wgan_gp]", "[tuning.space.wgan_pg]"),
        "key 'tuning.space.wgan_pg': no variant entry 'wgan_pg'; entries: wgan, wgan_gp",
    ),
    "not a field of the variant": (
        replace("n_critic = {", "clip = {"),
        "key 'tuning.space.wgan.clip': not a field of variant 'wgan'; its fields:",
    ),
    "low above high": (
        replace("low = 1, high = 3", "low = 3, high = 1"),
        "key 'tuning.space.wgan.n_critic': low must be below high",
    ),
    "log range through zero": (
        replace('lr = {type = "float", low = 1e-6', 'lr = {type = "float", low = 0.0'),
        "key 'tuning.space.wgan.lr': log = true needs low > 0",
    ),
    "range outside the field": (
        replace("low = 1, high = 3", "low = 0, high = 3"),
        "key 'tuning.space.wgan.n_critic → variants.wgan.n_critic': input should be greater than 0",
    ),
    "choice the field refuses": (
        replace("[[0.0, 0.9], [0.5, 0.9]]", "[[0.0, 0.9], [0.5]]"),
        "variants.wgan_gp.betas': list should have at least 2 items",
    ),
    "unknown parameter type": (
        replace('n_critic = {type = "int"', 'n_critic = {type = "integer"'),
        "key 'tuning.space.wgan.n_critic'",
    ),
    "unknown pruner": (
        replace('pruner = "median"', 'pruner = "asha"'),
        "key 'tuning.pruner': input should be 'median', 'hyperband' or 'none'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TUNING))
def test_bad_search_space_is_refused_cleanly(case, write_suite, bench, tmp_path):
    text, expected = BAD_TUNING[case]
    rc, err = bench("tune", f"suite={write_suite(text)}", "trials=2")
    assert rc == 2, err
    assert "tiny.toml" in err and expected in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_bad_tune_arguments_are_refused(write_suite, bench, tmp_path):
    path = write_suite(TUNE_SUITE)
    for args, expected in [
        (["trials=0"], "trials=0: must be a positive whole number"),
        (["entries=gan"], "entries=gan: no search space for gan"),
        (["compare=1"], "compare=1: must be true, false or a number of seeds >= 2"),
    ]:
        rc, err = bench("tune", f"suite={path}", *args)
        assert rc == 2 and expected in err, err
    rc, err = bench("tune", f"suite={write_suite(replace('[tuning]', '[tuning_]'), 'untuned')}")
    assert rc == 2 and "key 'tuning_': unknown key" in err
    assert not (tmp_path / "results").exists()


def trials_of(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    if storage.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(storage.removeprefix("journal:")))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def assert_exactly(trials: list[optuna.trial.FrozenTrial], n: int) -> None:
    """N trials COMPLETE or PRUNED, one per slot 0..N-1, each with its seed; nothing left running."""
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(t.user_attrs["slot"] for t in finished) == list(range(n))
    assert all(t.user_attrs["seed"] == 10_000 + t.user_attrs["slot"] for t in finished)
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]


def test_study_runs_to_completion_with_pruned_trials_in_optuna_and_mlflow(
    write_suite, bench, tmp_path
):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc, err = bench("tune", f"suite={write_suite(TUNE_SUITE)}", "trials=6", "entries=wgan",
                    f"storage={storage}", "tracking.enabled=true",
                    f"tracking.uri={mlflow_uri}")  # fmt: skip
    assert rc == 0, err
    trials = trials_of(storage, "tiny/wgan")
    assert [t.number for t in trials] == list(range(6))
    assert_exactly(trials, 6)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert pruned and len(complete) >= 2, [t.state.name for t in trials]
    assert all(max(t.intermediate_values) < 30 for t in pruned)  # stopped before the budget's end
    assert all(sorted(t.intermediate_values) == [10, 20, 30] for t in complete)

    # MLflow: the study's run with one child per trial; pruned ones KILLED and tagged PRUNED.
    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("tune/tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.data.tags.get("optuna.study") == "tiny/wgan"
              and "mlflow.parentRunId" not in r.data.tags]  # fmt: skip
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = {int(r.data.tags["optuna.trial_number"]): r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id}  # fmt: skip
    assert sorted(children) == list(range(6))
    for t in trials:
        run = children[t.number]
        assert run.data.tags["optuna.state"] == t.state.name
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[t.state.name]
        assert run.data.params["seed"] == str(t.user_attrs["seed"])
        history = client.get_metric_history(run.info.run_id, "energy_distance")
        assert sorted(m.step for m in history) == [0, *sorted(t.intermediate_values)]
    artifacts = {a.path for a in client.list_artifacts(parent[0].info.run_id)}
    assert {"wgan.toml", "wgan_history.png", "wgan_importance.png"} <= artifacts

    # Best parameters: a delta file that bench run applies (and records, so resume agrees).
    folder = tmp_path / "results" / "tuning" / "tiny"
    best = min(complete, key=lambda t: t.value)
    delta = tomllib.loads((folder / "wgan.toml").read_text())
    assert delta == {"variants": {"wgan": best.params}}
    assert (folder / "wgan_history.png").stat().st_size > 0
    suite = load_suite(
        str(write_suite(TUNE_SUITE)), layers=[read_override_file(folder / "wgan.toml")]
    )
    assert {e.label: e.config.lr for e in suite.entries}["wgan"] == best.params["lr"]

    out = tmp_path / "run"
    rc, err = bench("run", f"suite={tmp_path / 'suites' / 'tiny.toml'}", f"with={folder / 'wgan.toml'}",
                    f"out={out}", "budget.gen_steps=2", "eval.every=2")  # fmt: skip
    assert rc == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["variants"]["wgan"]["n_critic"] == best.params["n_critic"]
    assert config["with"][0]["table"] == delta
    rc, err = bench("resume", str(out))
    assert rc == 0, err  # the stored with= table is applied again, so nothing differs


def tune_process(tmp_path: Path, suite: Path, storage: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "tune", f"suite={suite}", f"storage={storage}",
         "entries=wgan", *args],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_killed_study_resumes_without_losing_or_repeating_trials(write_suite, tmp_path):
    suite = write_suite(
        replace("gen_steps = 30", "gen_steps = 300").replace("every = 10", "every = 30")
    )
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = tune_process(tmp_path, suite, storage, "trials=3", "tuning.pruner=none")
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # kill it inside a trial, after one trial completed
            time.sleep(0.2)
            try:
                trials = trials_of(storage, "tiny/wgan")
            except KeyError:  # the study does not exist yet
                continue
            training = [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]
            if any(t.state.name == "COMPLETE" for t in trials) and training:
                break
        else:
            pytest.fail(f"no trial completed in time: {proc.stderr.read() if proc.poll() else ''}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {t.number: t for t in trials_of(storage, "tiny/wgan") if t.state.name == "COMPLETE"}
    killed = [t for t in trials_of(storage, "tiny/wgan") if t.state.name == "RUNNING"]
    assert len(killed) == 1 and killed[0].params  # killed inside training, parameters drawn

    proc = tune_process(tmp_path, suite, storage, "trials=3", "tuning.pruner=none")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    trials = trials_of(storage, "tiny/wgan")
    assert_exactly(trials, 3)
    # Trials done before the kill are kept as they were, not run again.
    for number, t in before.items():
        assert trials[number].state.name == "COMPLETE" and trials[number].value == t.value
        assert trials[number].datetime_complete == t.datetime_complete
    # The killed trial is failed, and its slot ran once more, with its parameters and seed.
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [killed[0].number]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].user_attrs["slot"] == killed[0].user_attrs["slot"]
    assert retry[0].params == killed[0].params


def test_two_workers_share_one_study_exactly(write_suite, tmp_path):
    suite = write_suite(replace("gen_steps = 30", "gen_steps = 60"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    procs = [tune_process(tmp_path, suite, storage, "trials=6") for _ in range(2)]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in procs] == [0, 0], errs
    trials = trials_of(storage, "tiny/wgan")
    assert [t.number for t in trials] == list(range(6))  # none created beyond the 6 queued
    assert_exactly(trials, 6)
    assert not [t for t in trials if t.state.name == "FAIL"]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert sum(" trial " in e and ("COMPLETE" in e or "PRUNED" in e) for e in errs) == 2


def _open_after(barrier, url: str, results) -> None:  # noqa: ANN001 (multiprocessing objects)
    from bench.tuning.storage import open_storage

    barrier.wait()  # every process creates the tables at the same moment
    try:
        open_storage(url, 60)
        results.put("ok")
    except BaseException as exc:  # noqa: BLE001 (reported to the test)
        results.put(repr(exc))


def test_workers_started_together_on_a_new_database_all_open_it(tmp_path):
    # CI: the second of two workers died with "UNIQUE constraint failed:
    # alembic_version.version_num"; before the fix 9 of 10 rounds of 6 such processes lost one.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_after, args=(barrier, url, results)) for _ in range(6)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert outcomes == ["ok"] * 6, outcomes


def test_fair_comparison_ranks_the_tuned_variants(write_suite, bench, tmp_path):
    storage = f"journal:{tmp_path / 'journal.log'}"  # the journal file storage, here
    rc, err = bench("tune", f"suite={write_suite(TUNE_SUITE)}", "trials=2", "compare=2",
                    f"storage={storage}")  # fmt: skip
    assert rc == 0, err
    for entry in ("wgan", "wgan_gp"):
        assert_exactly(trials_of(storage, f"tiny/{entry}"), 2)
    folder = tmp_path / "results" / "tuning" / "tiny"
    summary = (folder / "fair.md").read_text()
    ranked = [
        line
        for line in summary.splitlines()
        if line.startswith("| 1 |") or line.startswith("| 2 |")
    ]
    assert len(ranked) == 2 and {"wgan", "wgan_gp"} == {
        line.split("|")[2].strip() for line in ranked
    }
    assert "2 (" in ranked[0] and "(n=2)" in ranked[0]  # tuning effort and the interval's n
    assert "Welch t-test" in summary and "n = 2 vs 2" in summary
    run = next((tmp_path / "results" / "runs").glob("*-tiny_fair"))
    assert (run / "fair.md").read_text() == summary
    df = pd.read_csv(run / "results.csv")
    final = df.groupby(["variant", "seed"]).tail(1)
    assert sorted(zip(final["variant"], final["seed"], strict=True)) == [
        ("wgan", 0), ("wgan", 1), ("wgan_gp", 0), ("wgan_gp", 1)]  # fmt: skip
    assert (final["step"] == 30).all()
    # The re-run used each entry's best parameters.
    config = json.loads((run / "config.json").read_text())
    best = tomllib.loads((folder / "wgan_gp.toml").read_text())["variants"]["wgan_gp"]
    assert config["variants"]["wgan_gp"]["lr"] == best["lr"]
    assert config["variants"]["wgan_gp"]["betas"] == best["betas"]


IMAGE_TUNE_SUITE = """
description = "tiny image tuning suite for tests"
seeds = [0]
datasets = ["digits"]
metrics = ["fid", "kid"]

[budget]
gen_steps = 20

[eval]
every = 10
num_samples = 200
num_real = 300
kid_subsets = 5
diag_samples = 64
hist_bins = 11

[train]
batch_size = 32
workers = 1
threads = 1

[variants.dcgan]

[tuning]
objective = "fid"
pruner = "none"
startup_trials = 1
trials = 2

[tuning.space.dcgan]
lr = {type = "float", low = 1e-4, high = 1e-3, log = true}
"""


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        ("fid/inception", "'fid/inception' is neither a metric nor a column that this suite's "
         "metrics and backbones fill on 'digits'; they fill: fid/lenet-digits, kid/lenet-digits, "
         "kid_std/lenet-digits"),
        ("kid_std", "'kid_std/lenet-digits' is a spread, not a score"),
        ("energy_distance", "'energy_distance' is neither a metric nor a column"),
    ],
)  # fmt: skip
def test_an_objective_the_image_suite_cannot_produce_is_refused(
    objective, expected, write_suite, bench, tmp_path
):
    text = IMAGE_TUNE_SUITE.replace('objective = "fid"', f'objective = "{objective}"')
    rc, err = bench("tune", f"suite={write_suite(text)}", "trials=1")
    assert rc == 2 and "key 'tuning.objective'" in err and expected in err, err
    assert "Traceback" not in err and not (tmp_path / "results").exists()


def test_objective_names_resolve_to_the_first_backbones_column():
    from bench.config import objective_column

    spec = load_suite("losses_mnist").spec
    assert objective_column(spec) == "fid/lenet-mnist5k"
    both = spec.model_copy(update={"eval": spec.eval.model_copy(
        update={"backbones": ["inception", "domain"]})})  # fmt: skip
    assert objective_column(both) == "fid/inception"
    for name, column in [("kid", "kid/lenet-mnist5k"), ("fid/lenet-mnist5k", "fid/lenet-mnist5k")]:
        named = spec.model_copy(
            update={"tuning": spec.tuning.model_copy(update={"objective": name})}
        )
        assert objective_column(named) == column
    assert objective_column(load_suite("cgan_mnist").spec) == "label_accuracy/lenet-mnist5k"


def test_a_tiny_image_suite_tunes_fid_to_complete_trials(write_suite, bench, cache, tmp_path,
                                                         monkeypatch):  # fmt: skip
    from bench.env import resolve_device

    monkeypatch.setenv("GAN_BENCH_CACHE", str(cache))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc, err = bench("tune", f"suite={write_suite(IMAGE_TUNE_SUITE)}", f"storage={storage}",
                    f"tracking.uri={mlflow_uri}")  # fmt: skip
    assert rc == 0, err
    assert "minimize fid/lenet-digits on digits, " in err
    trials = trials_of(storage, "tiny/dcgan")
    assert_exactly(trials, 2)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    device = resolve_device("auto")
    assert all(t.user_attrs["device"] == device for t in trials)
    # Each trial's value is its cell's final fid/lenet-digits, as logged row by row to MLflow.
    client = MlflowClient(mlflow_uri)
    for t in trials:
        history = client.get_metric_history(t.user_attrs["mlflow_run_id"], "fid/lenet-digits")
        final = max(history, key=lambda m: m.step)
        assert final.step == 20 and t.value == pytest.approx(final.value, rel=1e-12)
        assert 0 < t.value < float("inf") and t.intermediate_values[20] == t.value
    best = (tmp_path / "results" / "tuning" / "tiny" / "dcgan.toml").read_text()
    assert "\n# fid/lenet-digits = " in best


def test_a_failed_trial_is_explained_by_the_note_about_its_objective():
    from bench.tuning.study import missing_reason

    row = {"status": "ok", "note": "kid/lenet-digits: subset size 200 (fewer samples than the "
           "default 1000); fid/lenet-digits: 200 samples ≤ 500 feature dimensions"}  # fmt: skip
    reason = missing_reason(row, "fid/lenet-digits")
    assert reason == ("no finite fid/lenet-digits at the final evaluation: fid/lenet-digits: "
                      "200 samples ≤ 500 feature dimensions")  # fmt: skip
    assert missing_reason(row, "fid/inception").endswith(": no note names it")
    failed = {"status": "failed", "note": "RuntimeError: out of memory"}
    assert missing_reason(failed, "fid/lenet-digits").endswith("RuntimeError: out of memory")
    assert missing_reason({"status": "ok"}, "fid/x").endswith(": no note names it")


def test_tuning_on_a_missing_gpu_is_refused(write_suite, bench, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rc, err = bench("tune", f"suite={write_suite(TUNE_SUITE)}", "device=cuda", "trials=1")
    assert rc == 2 and "no CUDA device is available" in err, err
    assert not (tmp_path / "results").exists()
