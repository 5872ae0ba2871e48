"""``--time-budget``: durations, the plan made from the projection, and a search that keeps it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from support import search_args

from nas_mnist.cli.main import main
from nas_mnist.errors import InputError
from nas_mnist.searching.settings import SearchSettings
from nas_mnist.searching.time_budget import parse_duration, plan_time_budget


@pytest.mark.parametrize(("text", "seconds"), [
    ("2h", 7200), ("45m", 2700), ("45min", 2700), ("1h30m", 5400), ("90s", 90), ("600", 600),
    ("1.5h", 5400), (" 10M ", 600), (90, 90), (2.5, 2.5),
])
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "0", "0m", "1h30", "h", True, float("inf")])
def test_a_bad_duration_is_refused(text):
    with pytest.raises(ValueError, match="2h, 45m"):
        parse_duration(text)


@dataclass
class _Stage:
    name: str
    flops: tuple
    each: float

    def seconds(self, cost):
        return self.each * len(self.flops)


@dataclass
class _Projection:
    stages: tuple
    cost: object = None
    device: str = "GPU"
    jobs: int = 1


def _projection(trial_seconds=50.0, final_seconds=200.0, **kw):
    stages = [_Stage("seed", (1.0, 1.0), trial_seconds / 2),
              _Stage("sampled trial", (1.0,) * 10, trial_seconds)]
    if final_seconds:
        stages.append(_Stage("final model", (1.0,) * 4, final_seconds / 4))
    return _Projection(tuple(stages), **kw)


def test_trials_start_until_the_final_stage_and_the_cheapest_trial_are_left():
    settings = SearchSettings(time_budget="10m")
    plan = plan_time_budget(settings, _projection(), elapsed=60, wall_now=0)
    assert plan.settings.timeout == pytest.approx(600 - 60 - 200 - 25)  # a seed: 25 s
    assert plan.settings.resolved_final_top_k == settings.resolved_final_top_k
    assert "then the final stage (~4 min)" in plan.line
    assert plan.line.startswith("time budget 10 min: trials end by")
    assert "each only if its own projection (~25 s to ~50 s) ends by then" in plan.line
    assert plan.deadline.ends_at == pytest.approx(600 - 60 - 200)


def test_each_trial_starts_only_if_its_own_projection_ends_in_time():
    plan = plan_time_budget(SearchSettings(time_budget="10m", final_top_k=0),
                            _projection(final_seconds=0, device="CPU", jobs=2),
                            elapsed=0, wall_now=1000)
    deadline = plan.deadline  # ends at 1600; a sampled trial projects 50 s, twice on 2 jobs
    assert deadline.trial_seconds(1.0) == pytest.approx(100)
    assert deadline.refusal(1.0, now=1500) is None
    reason = deadline.refusal(1.0, now=1501)
    assert reason.startswith("time_budget: it projects ~100 s, and 99 s of --time-budget")


def test_a_final_stage_that_does_not_fit_is_dropped_and_said():
    plan = plan_time_budget(SearchSettings(time_budget="5m"), _projection(final_seconds=400),
                            elapsed=10, wall_now=0)
    assert plan.settings.resolved_final_top_k == 0
    assert plan.settings.timeout == pytest.approx(300 - 10 - 25)
    assert "no final stage" in plan.line and "nas-mnist retrain" in plan.line


def test_the_smaller_of_timeout_and_budget_wins():
    plan = plan_time_budget(SearchSettings(time_budget="1h", timeout=100), _projection(),
                            elapsed=0, wall_now=0)
    assert plan.settings.timeout == 100


def test_on_a_cpu_a_trial_of_several_jobs_takes_as_many_times_longer():
    plan = plan_time_budget(SearchSettings(time_budget="10m", final_top_k=0),
                            _projection(final_seconds=0, device="CPU", jobs=2),
                            elapsed=0, wall_now=0)
    assert plan.settings.timeout == pytest.approx(600 - 50)  # the cheapest: 25 s, twice


def test_a_budget_smaller_than_one_trial_starts_none():
    plan = plan_time_budget(SearchSettings(time_budget="20s", final_top_k=0),
                            _projection(final_seconds=0), elapsed=0, wall_now=0)
    assert plan.settings.timeout < 0.01
    assert "no trial starts" in plan.line


def test_bad_time_budget_settings_are_input_errors():
    with pytest.raises(InputError, match="--time-budget"):
        SearchSettings(time_budget="soon")
    with pytest.raises(InputError, match="--engine optuna"):
        SearchSettings(time_budget="1h", engine="keras-tuner")


def test_cli_refuses_a_bad_time_budget_with_exit_2_before_anything_is_made(
        workdir, real_mnist_path, capsys):
    assert main(search_args(real_mnist_path, 2, "--time-budget", "soon")) == 2
    err = capsys.readouterr().err
    assert "--time-budget" in err and "Traceback" not in err
    assert not Path("s.db").exists()


@pytest.mark.slow
def test_a_search_keeps_its_time_budget_and_leaves_no_trial_running(
        workdir, real_mnist_path, capsys):
    start = time.monotonic()
    assert main(search_args(real_mnist_path, 200, "--space", "small.yaml", "--baselines",
                            "none", "--time-budget", "45s")) == 0
    elapsed = time.monotonic() - start
    study = optuna.load_study(study_name="demo", storage="sqlite:///s.db")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert 0 < len(states) < 200
    # A trial that started before the deadline may finish after it: one trial's grace.
    longest = max(t.duration.total_seconds() for t in study.trials if t.duration)
    assert elapsed < 45 + longest + 15
    out = capsys.readouterr()
    assert "time budget 45 s: trials end by" in out.out + out.err


def test_a_trial_that_projects_past_the_deadline_waits_for_the_next_run(tmp_path):
    """The first trial fits and trains; the second (a baseline, 128 times the FLOPs) does not:
    it does not train, its configuration is queued again with its baseline, its MLflow run is
    gone, and the search stops."""
    from support import random_splits

    from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
    from nas_mnist.processes.signals import quiet_expected_failures
    from nas_mnist.searching.budget import run_trials
    from nas_mnist.searching.objective import Objective, ObjectiveConfig
    from nas_mnist.searching.time_budget import TrialDeadline
    from nas_mnist.timing import CostModel, StageWork
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    def spec_for_trial(trial):
        units = trial.suggest_int("units", 8, 16)
        return ArchitectureSpec(layers=(Flatten(), Dense(16 if units == 8 else 2048)))

    # ~1.3 s projected for Dense(16) (25 kFLOPs), ~40 s for Dense(2048): 20 s are left.
    deadline = TrialDeadline(time.time() + 20, StageWork("trial", (0.0,), 1, 1, 0, 0),
                             CostModel(0.0, 1e4, 0.0, 0.0, "test"))
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    runs = StudyRuns(tracker, tracker.experiment_id("budget"))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"units": 8})
    study.enqueue_trial({"units": 16}, user_attrs={"baseline": "s000_m1", "in_space": True})
    objective = Objective(None, random_splits(300, test=20, validation=50), runs,
                          ObjectiveConfig(epochs=1, trial_deadline=deadline),
                          spec_for_trial=spec_for_trial)
    with quiet_expected_failures():
        run_trials(study, objective, 5)
    trained, deferred, waiting = study.get_trials()  # stopped after the deferred one
    assert trained.state == optuna.trial.TrialState.COMPLETE
    assert deferred.state == optuna.trial.TrialState.FAIL
    assert deferred.user_attrs["reason"].startswith("time_budget: it projects ~")
    assert waiting.state == optuna.trial.TrialState.WAITING
    assert waiting.params == {} and waiting.system_attrs["fixed_params"] == {"units": 16}
    assert waiting.user_attrs == {"baseline": "s000_m1", "in_space": True}
    run = tracker.client.get_run(deferred.user_attrs["mlflow_run_id"])
    assert run.info.lifecycle_stage == "deleted" and run.info.status == "KILLED"


def _sampled_search(tmp_path, units_in_order, deadline_seconds=20):
    """An objective whose sampled trials train ``Dense(units)`` in the given order, under a
    deadline ``deadline_seconds`` away (~1.3 s projected for Dense(16), ~40 s for
    Dense(2048)); its study, tracker and objective."""
    from support import random_splits

    from nas_mnist.architecture.spec import ArchitectureSpec, Dense, Flatten
    from nas_mnist.searching.objective import Objective, ObjectiveConfig
    from nas_mnist.searching.time_budget import TrialDeadline
    from nas_mnist.timing import CostModel, StageWork
    from nas_mnist.tracking.tracker import StudyRuns, Tracker

    units = iter(units_in_order)

    def spec_for_trial(trial):
        trial.suggest_int("units", 8, 16)  # a sampled param, as the space would have
        return ArchitectureSpec(layers=(Flatten(), Dense(next(units))))

    deadline = TrialDeadline(time.time() + deadline_seconds,
                             StageWork("trial", (0.0,), 1, 1, 0, 0),
                             CostModel(0.0, 1e4, 0.0, 0.0, "test"))
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    runs = StudyRuns(tracker, tracker.experiment_id("budget"))
    study = optuna.create_study(direction="maximize")
    objective = Objective(None, random_splits(300, test=20, validation=50), runs,
                          ObjectiveConfig(epochs=1, trial_deadline=deadline),
                          spec_for_trial=spec_for_trial)
    return study, tracker, objective


def test_a_sampled_spec_past_the_deadline_is_pruned_and_the_search_goes_on(tmp_path):
    """A sampled trial that projects past the deadline is pruned with its reason, its MLflow
    run kept with the spec; it does not count towards the trials asked for, nothing is queued,
    and the next sampled trials train."""
    from nas_mnist.processes.signals import quiet_expected_failures
    from nas_mnist.searching.budget import run_trials
    from nas_mnist.study.trial_counts import count_finished

    study, tracker, objective = _sampled_search(tmp_path, [2048, 16, 16])
    with quiet_expected_failures():
        run_trials(study, objective, 2)
    refused, *trained = study.get_trials()
    assert refused.state == optuna.trial.TrialState.PRUNED
    assert refused.user_attrs["reason"].startswith("time_budget: it projects ~")
    assert [t.state for t in trained] == [optuna.trial.TrialState.COMPLETE] * 2
    assert count_finished(study) == 2
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    run = tracker.client.get_run(refused.user_attrs["mlflow_run_id"])
    assert run.info.lifecycle_stage == "active" and run.info.status == "FINISHED"
    assert run.data.tags["reason"] == refused.user_attrs["reason"]
    assert "spec.json" in {f.path for f in tracker.client.list_artifacts(run.info.run_id)}


def test_five_sampled_specs_in_a_row_past_the_deadline_stop_the_search(tmp_path):
    from nas_mnist.processes.signals import quiet_expected_failures
    from nas_mnist.searching.budget import run_trials
    from nas_mnist.study.trial_counts import TIME_REFUSAL_LIMIT

    study, _, objective = _sampled_search(tmp_path, [2048, 2048, 16] + [2048] * 20)
    with quiet_expected_failures():
        run_trials(study, objective, 10)
    states = [t.state for t in study.get_trials()]
    # Two refused, one trained (which resets the count), then five refused in a row.
    assert states == ([optuna.trial.TrialState.PRUNED] * 2 + [optuna.trial.TrialState.COMPLETE]
                      + [optuna.trial.TrialState.PRUNED] * TIME_REFUSAL_LIMIT)
