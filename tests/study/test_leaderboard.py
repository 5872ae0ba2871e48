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


def test_one_missing_value_marker_per_kind_and_rounded_values():
    import pandas as pd

    from nas_mnist.study.leaderboard import FLOAT_COLUMNS, INTEGER_COLUMNS, TEXT_COLUMNS

    study = _study()
    study.add_trial(_trial(0.912345678, test_accuracy=0.90006, train_seconds=41.26,
                           latency_ms=0.12345, num_params=81234, depth=5))
    frame = leaderboard(study)
    assert set(COLUMNS) == {*INTEGER_COLUMNS, *FLOAT_COLUMNS, *TEXT_COLUMNS, "pareto"}
    cells = frame.astype(object).to_numpy().ravel()
    # numbers: pd.NA only (no NaN, no None); text: "" where a trial has nothing
    assert not any(c is None or (isinstance(c, float) and c != c) for c in cells)
    assert all(frame[c].dtype == "Int64" for c in INTEGER_COLUMNS)
    assert all(frame[c].dtype == "Float64" for c in FLOAT_COLUMNS)
    assert frame["pareto"].dtype == "boolean" and frame["pareto"].isna().all()
    assert all(frame[c].map(lambda v: isinstance(v, str)).all() for c in TEXT_COLUMNS)
    assert frame.loc[4, "val_accuracy"] is pd.NA and frame.loc[4, "filters"] == ""
    row = frame[frame["trial"] == 5].iloc[0]
    assert (row["val_accuracy"], row["test_accuracy"]) == (0.9123, 0.9001)
    assert (row["train_seconds"], row["latency_ms"], row["params"]) == (41.3, 0.123, 81234)
    assert frame["val_accuracy"].to_numpy().dtype == "float64"  # NaN for numpy and plots
