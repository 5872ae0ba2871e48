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


def test_trials_start_until_the_final_stage_and_one_trial_are_left():
    settings = SearchSettings(time_budget="10m")
    plan = plan_time_budget(settings, _projection(), elapsed=60, wall_now=0)
    assert plan.settings.timeout == pytest.approx(600 - 60 - 200 - 50)
    assert plan.settings.resolved_final_top_k == settings.resolved_final_top_k
    assert "then the final stage (~4 min)" in plan.line
    assert plan.line.startswith("time budget 10 min: trials start until")


def test_a_final_stage_that_does_not_fit_is_dropped_and_said():
    plan = plan_time_budget(SearchSettings(time_budget="5m"), _projection(final_seconds=400),
                            elapsed=10, wall_now=0)
    assert plan.settings.resolved_final_top_k == 0
    assert plan.settings.timeout == pytest.approx(300 - 10 - 50)
    assert "no final stage" in plan.line and "nas-mnist retrain" in plan.line


def test_the_smaller_of_timeout_and_budget_wins():
    plan = plan_time_budget(SearchSettings(time_budget="1h", timeout=100), _projection(),
                            elapsed=0, wall_now=0)
    assert plan.settings.timeout == 100


def test_on_a_cpu_a_trial_of_several_jobs_takes_as_many_times_longer():
    plan = plan_time_budget(SearchSettings(time_budget="10m", final_top_k=0),
                            _projection(final_seconds=0, device="CPU", jobs=2),
                            elapsed=0, wall_now=0)
    assert plan.settings.timeout == pytest.approx(600 - 100)


def test_a_budget_smaller_than_one_trial_starts_none():
    plan = plan_time_budget(SearchSettings(time_budget="40s", final_top_k=0),
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
    assert "time budget 45 s: trials start until" in out.out + out.err
