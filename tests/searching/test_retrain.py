"""``nas_mnist.retrain``: which specs become final models, the idempotent queue of the final
study, retries, and (slow) a tiny search retrained into a registered champion."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.errors import InputError
from nas_mnist.searching.final.objective import FinalObjective, NotAFinalModelError
from nas_mnist.searching.final.queue import (
    check_recipe,
    drop_unplanned,
    enqueue_final_models,
    missing_final_models,
    trials_by_key,
)
from nas_mnist.searching.final.recipe import FinalRecipe
from nas_mnist.searching.final.selection import plan_final_models, select_sources
from nas_mnist.study.recovery import requeue_trial
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    FINAL_KEY_ATTR,
    RECIPE_ATTR,
    SOURCE_TRIAL_ATTR,
    SPEC_ATTR,
)

SPEC = get_baseline("s001_m2").spec
BASELINE = get_baseline("s004_linear")


def _spec(batch_size: int):
    return dataclasses.replace(SPEC, batch_size=batch_size)


def _study(*trials):
    """An in-memory study holding ``trials``: (val_accuracy or None for failed, spec, baseline)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", study_name="demo")
    for value, spec, baseline in trials:
        attrs = {SPEC_ATTR: spec.to_dict(), **({BASELINE_ATTR: baseline} if baseline else {})}
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    return study


def _names(sources):
    return [s.name for s in sources]


def test_top_k_counts_equal_specs_once_and_adds_the_best_baseline():
    study = _study((0.90, _spec(32), None), (0.95, _spec(64), None), (0.94, _spec(64), None),
                   (0.93, _spec(128), None), (0.80, BASELINE.spec, BASELINE.name),
                   (None, _spec(256), None))
    sources = select_sources(study, 2, best_baseline=True)
    assert _names(sources) == ["trial:1", "trial:3", "baseline:s004_linear"]
    assert sources[2].source_trial == 4 and sources[2].search_val_accuracy == 0.80
    assert _names(select_sources(study, 10, best_baseline=False)) == [
        "trial:1", "trial:3", "trial:0", "baseline:s004_linear"]  # 3 distinct + the baseline


def test_a_baseline_in_the_top_k_is_not_added_twice_and_named_baselines_are_added():
    study = _study((0.99, BASELINE.spec, BASELINE.name), (0.95, _spec(64), None))
    sources = select_sources(study, 2, best_baseline=True, baselines=("s004_linear", "s001_m1"))
    assert _names(sources) == ["baseline:s004_linear", "trial:1", "baseline:s001_m1"]
    assert sources[2].source_trial is None  # from the catalog: not a trial of the study


def test_a_study_without_a_complete_trial_is_refused():
    with pytest.raises(InputError, match="no complete trial to retrain"):
        select_sources(_study((None, SPEC, None)), 3, best_baseline=True)


def _plan(seeds=2):
    study = _study((0.95, _spec(64), None), (0.80, BASELINE.spec, BASELINE.name))
    return plan_final_models(select_sources(study, 1, True), FinalRecipe(epochs=2), seeds)


def test_plan_keys_and_final_specs():
    plan = _plan()
    assert [m.key for m in plan] == ["trial:0/seed:0", "trial:0/seed:1",
                                     "baseline:s004_linear/seed:0", "baseline:s004_linear/seed:1"]
    assert plan[0].spec.lr_schedule == "cosine" and plan[0].spec.augmentation.enabled
    attrs = plan[2].user_attrs({"epochs": 2})
    assert attrs[SOURCE_TRIAL_ATTR] == 1 and attrs[BASELINE_ATTR] == "s004_linear"
    assert attrs[FINAL_KEY_ATTR] == "baseline:s004_linear/seed:0"


def _final_study():
    return optuna.create_study(direction="maximize", study_name="demo/final")


def test_enqueueing_twice_enqueues_once_and_a_finished_model_is_never_queued_again():
    plan, final = _plan(), _final_study()
    assert enqueue_final_models(final, plan, {"epochs": 2}) == [m.key for m in plan]
    assert enqueue_final_models(final, plan, {"epochs": 2}) == []
    trial = final.ask()  # the first queued one runs and completes
    final.tell(trial, 0.9)
    assert missing_final_models(final, plan) == []
    assert len(final.get_trials(states=(TrialState.WAITING,))) == 3


def test_an_interrupted_final_model_is_retried_once_under_its_key():
    plan, final = _plan(seeds=1), _final_study()
    enqueue_final_models(final, plan, {"epochs": 2})
    trial = final.ask()
    attrs = dict(trial.user_attrs)
    final.tell(trial, state=TrialState.FAIL)
    assert [m.key for m in missing_final_models(final, plan)] == ["trial:0/seed:0"]
    requeue_trial(final, trial.number, {}, attrs, "interrupted")  # as Ctrl-C does
    assert missing_final_models(final, plan) == []  # the retry holds the key
    assert set(trials_by_key(final)) == {m.key for m in plan}
    final.tell(final.ask(), 0.5)  # the other planned model
    retry = final.ask()
    objective = FinalObjective(None, SimpleNamespace(tracker=None), SimpleNamespace())
    adopted = objective._adopt_final_attrs(retry)
    assert adopted[FINAL_KEY_ATTR] == "trial:0/seed:0"
    assert retry.user_attrs[SPEC_ATTR] == plan[0].spec.to_dict()


def test_a_final_model_interrupted_twice_is_queued_again_by_the_next_retrain():
    """Its retry, interrupted too, is not retried (``requeue_trial``), yet the model is still
    missing: the same command enqueues it again, as its 'interrupted' line says."""
    plan, final = _plan(seeds=1), _final_study()
    enqueue_final_models(final, plan, {"epochs": 2})
    first = final.ask()
    final.tell(first, state=TrialState.FAIL)
    assert requeue_trial(final, first.number, {}, dict(first.user_attrs), "interrupted")
    final.tell(final.ask(), 0.5)  # the other planned model
    retry = final.ask()
    final.tell(retry, state=TrialState.FAIL)
    assert not requeue_trial(final, retry.number, {}, dict(retry.user_attrs), "interrupted")
    assert [m.key for m in missing_final_models(final, plan)] == [first.user_attrs[FINAL_KEY_ATTR]]
    assert enqueue_final_models(final, plan, {"epochs": 2}) == [first.user_attrs[FINAL_KEY_ATTR]]


def test_a_trial_not_enqueued_by_retrain_is_refused():
    final = _final_study()
    objective = FinalObjective(None, SimpleNamespace(tracker=None), SimpleNamespace())
    with pytest.raises(NotAFinalModelError):
        objective._adopt_final_attrs(final.ask())


def test_queued_models_no_longer_asked_for_are_dropped():
    plan, final = _plan(), _final_study()
    enqueue_final_models(final, plan, {"epochs": 2})
    dropped = drop_unplanned(final, {plan[0].key})
    assert len(dropped) == 3
    assert [t.user_attrs[FINAL_KEY_ATTR] for t in final.get_trials(
        states=(TrialState.WAITING,))] == [plan[0].key]


def test_final_models_of_another_recipe_are_refused():
    plan, final = _plan(seeds=1), _final_study()
    enqueue_final_models(final, plan, FinalRecipe(epochs=2).record(300))
    final.tell(final.ask(), 0.9)
    check_recipe(final, FinalRecipe(epochs=2).to_dict(), "demo")  # same recipe: fine
    with pytest.raises(InputError, match=r"epochs 2 \(asked: 5\)"):
        check_recipe(final, FinalRecipe(epochs=5).to_dict(), "demo")
    assert final.trials[0].user_attrs[RECIPE_ATTR]["num_train_images"] == 300


def _finished(state: TrialState, seconds: float, value: float | None = None, **attrs):
    """A finished ``FrozenTrial`` of the final study that took ``seconds``."""
    from datetime import datetime, timedelta

    from optuna.trial import FrozenTrial

    start = datetime(2026, 11, 27, 21, 0)
    return FrozenTrial(number=3, state=state, value=value, values=None, datetime_start=start,
                       datetime_complete=start + timedelta(seconds=seconds), params={},
                       distributions={}, user_attrs=attrs, system_attrs={},
                       intermediate_values={}, trial_id=3)


def test_a_finished_final_model_gets_one_line_with_its_result_or_its_reason():
    from nas_mnist.searching.final.result import final_model_line
    from nas_mnist.trial_attributes import BEST_EPOCH_ATTR, REASON_ATTR, TEST_ACCURACY_ATTR

    attrs = {FINAL_KEY_ATTR: "trial:46/seed:1", RECIPE_ATTR: {"epochs": 30}}
    done = _finished(TrialState.COMPLETE, 541, 0.99554,
                     **{**attrs, TEST_ACCURACY_ATTR: 0.9944, BEST_EPOCH_ATTR: 23})
    assert final_model_line(done, 3, 4) == (
        "final model trial:46/seed:1 complete: val_accuracy 0.9955, test_accuracy 0.9944, "
        "best epoch 23 of 0-29, 10 min; 3 of 4 final models complete")  # rounded up
    one_epoch = _finished(TrialState.COMPLETE, 3, 0.4569, **{
        **attrs, RECIPE_ATTR: {"epochs": 1}, TEST_ACCURACY_ATTR: 0.46, BEST_EPOCH_ATTR: 0})
    assert final_model_line(one_epoch, 1, 4) == (  # no "best epoch 0 of 0-0"
        "final model trial:46/seed:1 complete: val_accuracy 0.4569, test_accuracy 0.4600, 3 s; "
        "1 of 4 final models complete")
    failed = _finished(TrialState.FAIL, 5, **{**attrs, REASON_ATTR: "NaN loss at epoch 0"})
    assert final_model_line(failed, 2, 4) == (
        "final model trial:46/seed:1 failed, 5 s: NaN loss at epoch 0; "
        "2 of 4 final models complete")


# --- end to end ---------------------------------------------------------------------------

LOAD_CHAMPION = """
import json, sys
import numpy as np
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
out = np.asarray(model.predict(np.zeros((3, 28, 28, 1), np.uint8))["probabilities"])
print(json.dumps({"shape": list(out.shape), "nas_mnist": "nas_mnist" in sys.modules}))
"""


def _load_in_fresh_process(uri: str, tracking_uri: str) -> dict:
    """Load ``uri`` with pyfunc in a new Python that never imports nas_mnist."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", LOAD_CHAMPION, uri], capture_output=True,
                          text=True, env=env, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_tiny_search_retrained_into_a_registered_champion_and_again_trains_nothing(
        workdir, real_mnist_path, caplog):
    from mlflow import MlflowClient
    from support import mlflow_uri

    import nas_mnist
    from nas_mnist.searching.final.selection import top_distinct_sources

    store = mlflow_uri()
    common = dict(storage="sqlite:///s.db", study_name="demo", progress=False)
    searched = nas_mnist.search(trials=4, epochs=1, max_train_samples=300, space="small.yaml",
                                baselines="s004_linear", data=real_mnist_path,
                                tracking_uri=store, **common)
    expected = {f"{s.name}/seed:0" for s in top_distinct_sources(searched.study, 2)}
    expected.add("baseline:s004_linear/seed:0")
    caplog.set_level("INFO", logger="nas_mnist")
    result = nas_mnist.retrain(top_k=2, epochs=1, max_train_samples=300, **common)
    assert set(result.final_models["key"]) == expected
    projected = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("final models projected on the CPU")]
    assert len(projected) == 1 and all(f"{key} ~" in projected[0] for key in expected)
    finished = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("final model ")]  # one line each, as they finish
    assert {line.split()[2] for line in finished} == expected
    assert [line.rsplit("; ", 1)[1] for line in finished] == [
        f"{n} of {len(expected)} final models complete" for n in range(1, len(expected) + 1)]
    caplog.clear()
    assert result.final_models["state"].eq("complete").all() and result.trained == len(expected)
    assert result.champion_key == result.final_models["key"].iloc[0]  # best val_accuracy
    client = MlflowClient(store)
    champion = client.get_model_version_by_alias("demo", "champion")
    assert champion.source == result.champion.user_attrs["model_uri"]
    final_runs = client.search_runs([result.experiment_id], "tags.phase = 'final'")
    assert {r.data.tags.get("final_key") for r in final_runs} >= expected
    assert all(r.info.status == "FINISHED" for r in final_runs)
    assert _load_in_fresh_process("models:/demo@champion", store) == {
        "shape": [3, 10], "nas_mnist": False}

    again = nas_mnist.retrain(top_k=2, epochs=1, max_train_samples=300, **common)
    assert again.trained == 0
    assert not any("final models projected" in r.getMessage() for r in caplog.records)
    assert len(again.final_study.trials) == len(expected)  # nothing enqueued or trained
    assert (again.champion_version, again.ensemble_version) == (result.champion_version,
                                                                result.ensemble_version)


def _running_final_trial(process: subprocess.Popen, timeout: float = 300.0) -> int:
    """Poll the final study until a final model runs, give it 3 s of training; return its
    number."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            final = optuna.load_study(study_name="demo/final", storage="sqlite:///s.db")
        except KeyError:  # not created yet
            final = None
        for trial in final.get_trials(states=(TrialState.RUNNING,)) if final else ():
            time.sleep(3)
            return trial.number
        time.sleep(0.5)
    raise AssertionError("no final model started training in time")


@pytest.mark.slow
def test_sigkill_during_a_final_model_then_the_same_command_finishes_exactly_the_plan(
        workdir, real_mnist_path):
    import signal

    from mlflow import MlflowClient
    from support import mlflow_uri

    import nas_mnist
    from nas_mnist.searching.final.selection import top_distinct_sources

    store = mlflow_uri()
    searched = nas_mnist.search(trials=3, epochs=1, max_train_samples=300, space="small.yaml",
                                baselines="s004_linear", data=real_mnist_path, tracking_uri=store,
                                storage="sqlite:///s.db", study_name="demo", progress=False)
    expected = {f"{s.name}/seed:0" for s in top_distinct_sources(searched.study, 1)}
    expected.add("baseline:s004_linear/seed:0")  # the top spec and the best baseline, once each
    retrain = [sys.executable, "-m", "nas_mnist", "retrain", "--storage", "sqlite:///s.db",
               "--study-name", "demo", "--top-k", "1", "--epochs", "40", "--max-train-samples",
               "300", "--tracking-uri", store, "--no-progress"]
    process = subprocess.Popen(retrain, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = _running_final_trial(process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    again = subprocess.run(retrain, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    final = optuna.load_study(study_name="demo/final", storage="sqlite:///s.db")
    complete = [t for t in final.trials if t.state == TrialState.COMPLETE]
    keys = [t.user_attrs["final_key"] for t in complete]
    assert sorted(keys) == sorted(expected)
    assert final.trials[killed].state == TrialState.FAIL
    assert not final.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    assert client.get_model_version_by_alias("demo", "champion")
