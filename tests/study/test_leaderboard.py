"""The leaderboard, its column registry and the best-trial rule, on in-memory studies."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.study.leaderboard import (
    COLUMNS,
    VIEWS,
    baseline_comparison,
    best_trial,
    leaderboard,
    leaderboard_records,
    view,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trial(value, state=TrialState.COMPLETE, **attrs):
    return optuna.trial.create_trial(state=state, value=value, user_attrs=attrs)


def _study() -> optuna.Study:
    spec = get_baseline("s003_m1").spec
    study = optuna.create_study(direction="maximize")
    study.add_trials([
        _trial(0.95, baseline="s003_m1", in_space=True, spec=spec.to_dict(), params=123,
               test_accuracy=0.94, model_uri="runs:/a/model/model.keras"),
        _trial(0.97, test_accuracy=0.96),  # searched, no kept model
        _trial(0.97, test_accuracy=0.90, model_uri="runs:/c/model/model.keras"),  # tie: later
        _trial(None, state=TrialState.PRUNED, reason="invalid_architecture: too small"),
        _trial(None, state=TrialState.FAIL, baseline="s004_linear", reason="nan_loss: nan"),
    ])
    return study


def test_rows_are_ranked_by_val_accuracy_complete_first():
    frame = leaderboard(_study())
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["trial"]) == [1, 2, 0, 3, 4]
    assert list(frame["state"]) == ["complete", "complete", "complete", "pruned", "fail"]
    assert frame.loc[2, "baseline"] == "s003_m1"
    assert frame.loc[4, "baseline"] == "s004_linear (out-of-space)"
    assert frame.loc[2, "filters"] == get_baseline("s003_m1").spec.summary()["filters"]
    assert frame.loc[3, "note"].startswith("invalid_architecture")


def test_views_select_registered_columns():
    frame = leaderboard(_study())
    assert list(view(frame, "records").columns) == [*VIEWS["records"], "note"]
    records = leaderboard_records(frame)
    assert set(records[0]) == set(VIEWS["records"]) and records[3]["val_accuracy"] is None
    assert all(set(columns) <= set(COLUMNS) for columns in VIEWS.values())


def test_best_trial_breaks_ties_to_the_earliest_and_can_require_a_kept_model():
    study = _study()
    assert best_trial(study).number == 1
    assert best_trial(study, with_model=True).number == 2
    assert best_trial(optuna.create_study()) is None


def test_baseline_comparison_is_best_searched_minus_best_baseline():
    comparison = baseline_comparison(leaderboard(_study()))
    assert comparison["searched_trial"] == 1 and comparison["baseline_trial"] == 0
    assert round(comparison["val_accuracy_gain"], 6) == 0.02
    assert round(comparison["test_accuracy_gain"], 6) == 0.02
