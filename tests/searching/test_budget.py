"""The study-wide trial budget, on in-memory studies (no training)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nas_mnist.searching.budget import count_claimed, count_finished, run_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study_with(states: list[TrialState]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for state in states:
        study.add_trial(optuna.trial.create_trial(
            state=state, value=0.5 if state == TrialState.COMPLETE else None,
            intermediate_values={0: 0.4} if state == TrialState.PRUNED else {}))
    return study


def test_count_finished_counts_complete_and_pruned_only():
    study = _study_with([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                         TrialState.WAITING])
    assert count_finished(study) == 2


def test_count_claimed_adds_running_trials_numbered_before_the_asking_one():
    study = _study_with([TrialState.COMPLETE, TrialState.FAIL])
    first = study.ask()  # RUNNING, number 2
    second = study.ask()  # RUNNING, number 3
    assert count_claimed(study) == 3  # 1 complete + 2 running
    assert count_claimed(study, before_number=second.number) == 2  # the earlier runner counts
    assert count_claimed(study, before_number=first.number) == 1


def test_run_trials_tops_up_to_the_study_wide_total():
    study = _study_with([TrialState.COMPLETE, TrialState.PRUNED])
    outcome = run_trials(study, lambda trial: 0.9, n_trials=5)
    assert outcome == {"ran": 3, "stopped_for_failures": False}
    assert count_finished(study) == 5
    assert run_trials(study, lambda trial: 0.9, n_trials=5)["ran"] == 0  # nothing left to do


def test_failed_trials_do_not_count_and_the_worker_stops_after_a_run_of_failures():
    def failing(trial: optuna.Trial) -> float:
        raise RuntimeError("boom")

    study = optuna.create_study(direction="maximize")
    outcome = run_trials(study, failing, n_trials=3, max_consecutive_failures=4)
    assert outcome == {"ran": 4, "stopped_for_failures": True}
    assert count_finished(study) == 0
    assert all(t.state == TrialState.FAIL for t in study.trials)


def test_a_success_resets_the_failure_count():
    calls = iter([RuntimeError("a"), 0.5, RuntimeError("b"), RuntimeError("c"), 0.7])

    def flaky(trial: optuna.Trial) -> float:
        result = next(calls)
        if isinstance(result, Exception):
            raise result
        return result

    study = optuna.create_study(direction="maximize")
    outcome = run_trials(study, flaky, n_trials=2, max_consecutive_failures=3)
    assert outcome["stopped_for_failures"] is False
    assert count_finished(study) == 2


@pytest.mark.parametrize("reason", ["surplus: 3 trials are finished or running ahead of it"])
def test_surplus_trials_are_not_failures(reason):
    def surplus(trial: optuna.Trial) -> float:
        trial.set_user_attr("reason", reason)
        raise RuntimeError(reason)

    study = optuna.create_study(direction="maximize")
    outcome = run_trials(study, surplus, n_trials=1, max_consecutive_failures=2, timeout=2)
    assert outcome["stopped_for_failures"] is False


def test_a_worker_stops_when_the_rest_of_the_budget_is_running_elsewhere():
    study = _study_with([TrialState.COMPLETE, TrialState.COMPLETE])
    study.ask()  # another worker's trial, RUNNING
    outcome = run_trials(study, lambda trial: 0.9, n_trials=4)
    assert outcome["ran"] == 1  # a second one would be a surplus trial
    assert count_claimed(study) == 4


def test_max_trials_here_bounds_one_call():
    study = _study_with([])
    assert run_trials(study, lambda trial: 0.9, n_trials=10, max_trials_here=3)["ran"] == 3


def test_one_failure_streak_counts_for_the_callback_and_the_supervisor():
    from nas_mnist.study.trial_counts import FailureStreak

    def trial(state: TrialState, reason: str = "") -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(state=state, value=0.5 if state == TrialState.COMPLETE
                                         else None, user_attrs={"reason": reason})

    streak = FailureStreak(limit=2)
    assert not streak.add(trial(TrialState.FAIL))
    assert not streak.add(trial(TrialState.FAIL, "surplus: 3 trials ahead"))  # neither counts
    assert streak.count == 1                                                  # nor resets
    assert streak.add(trial(TrialState.FAIL))
    assert not streak.add(trial(TrialState.COMPLETE)) and streak.count == 0


def test_one_time_refusal_streak_counts_for_the_callback_and_the_supervisor():
    from nas_mnist.study.trial_counts import TimeRefusalStreak

    def trial(state: TrialState, reason: str = "") -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(state=state, value=0.5 if state == TrialState.COMPLETE
                                         else None, user_attrs={"reason": reason})

    refused = trial(TrialState.PRUNED, "time_budget: it projects ~900 s, and 300 s are left")
    streak = TimeRefusalStreak(limit=3)
    assert not streak.add(refused)
    assert not streak.add(trial(TrialState.PRUNED, "invalid_architecture: layer 3"))
    assert not streak.add(trial(TrialState.PRUNED, "too_large: 2,000,000 params exceed"))
    assert streak.count == 1  # neither pruned-before-training reason counts nor resets
    assert not streak.add(refused)
    assert streak.add(refused)
    assert not streak.add(trial(TrialState.COMPLETE)) and streak.count == 0


def _impossible_every_other(trial: optuna.Trial) -> float:
    # What the objective does for a point whose layers do not fit a 28x28 image.
    if trial.number % 2 == 0:
        trial.set_user_attr("reason", "invalid_architecture: layer 3 (conv 5x5) needs 5x5")
        raise optuna.TrialPruned("invalid_architecture: layer 3 (conv 5x5) needs 5x5")
    return 0.9


def test_impossible_architectures_stay_in_the_study_but_do_not_count():
    study = optuna.create_study(direction="maximize")
    outcome = run_trials(study, _impossible_every_other, n_trials=3)
    assert count_finished(study) == 3  # three trained
    assert outcome["ran"] == 6 and len(study.trials) == 6
    impossible = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(impossible) == 3  # told to the sampler as pruned


def test_a_space_of_impossible_points_stops_the_search():
    from nas_mnist.study.trial_counts import IMPOSSIBLE_LIMIT

    def impossible(trial: optuna.Trial) -> float:
        trial.set_user_attr("reason", "invalid_architecture: no layer fits")
        raise optuna.TrialPruned("invalid_architecture: no layer fits")

    study = optuna.create_study(direction="maximize")
    outcome = run_trials(study, impossible, n_trials=3)
    assert outcome == {"ran": IMPOSSIBLE_LIMIT, "stopped_for_failures": True}
    assert count_finished(study) == 0


def test_no_trial_starts_in_the_last_second_before_the_timeout():
    # --time-budget passes a tiny timeout when no trial fits; Optuna alone would start one.
    study = optuna.create_study(direction="maximize")
    assert run_trials(study, lambda trial: 0.9, n_trials=3, timeout=0.5)["ran"] == 0
    assert study.trials == []
