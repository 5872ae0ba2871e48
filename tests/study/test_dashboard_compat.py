"""optuna-dashboard serves every kind of study nas-mnist makes: its API answers 200 on every
panel (study detail, importances, each plot, CSV) for single- and multi-objective studies holding
baseline, sampled, pruned, failed and waiting trials, with nas-mnist's own params and attrs."""

from __future__ import annotations

import io
import json
import math
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from nas_mnist.search_space.space import load_search_space
from nas_mnist.searching import baseline_trials as seeding
from nas_mnist.study.opening import open_study
from nas_mnist.trial_attributes import (
    NUM_PARAMS_ATTR,
    REASON_ATTR,
    SUMMARY_ATTRS,
    record_trial_spec,
)

optuna_dashboard = pytest.importorskip("optuna_dashboard")

# Not "contour" and "rank": optuna.visualization draws them server-side as a grid over every
# pair of params (80-odd params here: thousands of plotly subplots, minutes per request); the
# dashboard draws its own in the browser for the params the user picks.
PLOTS = ("slice", "parallel_coordinate", "edf", "timeline")


def _objective(space, objectives):
    """Like nas-mnist's objective, without training: the real spec and attrs, fake numbers."""

    def objective(trial: optuna.Trial):
        try:
            spec = seeding.spec_for_trial(trial, space)
        except Exception as exc:  # an impossible architecture: pruned before training
            trial.set_user_attr(REASON_ATTR, f"invalid_architecture: {exc}")
            raise optuna.TrialPruned() from None
        record_trial_spec(trial, spec.to_dict())
        summary = spec.summary()
        for key in SUMMARY_ATTRS:
            trial.set_user_attr(key, summary[key])
        trial.set_user_attr(NUM_PARAMS_ATTR, spec.num_params)
        trial.set_user_attr("phase_seconds", {"fit": 1.5, "total": 2.0})
        if trial.number % 7 == 6:
            trial.set_user_attr(REASON_ATTR, "nan_loss: loss became nan at epoch 1")
            raise FloatingPointError("nan loss")
        value = 0.9 + 0.09 * math.sin(trial.number) ** 2
        for epoch in range(2):
            if len(objectives) == 1:
                trial.report(value - 0.01 * (1 - epoch), epoch)
                if trial.should_prune():
                    trial.set_user_attr(REASON_ATTR, "pruned after epoch 1")
                    raise optuna.TrialPruned()
        values = {"val_accuracy": value, "params": float(spec.num_params), "latency": 0.01}
        return value if len(objectives) == 1 else tuple(values[n] for n in objectives)

    return objective


def _study(tmp_path, objectives):
    space = load_search_space(None)
    study, _ = open_study(f"sqlite:///{tmp_path / 's.db'}", "demo", seed=0, objectives=objectives,
                          pruner="median" if len(objectives) == 1 else "none", epochs=2)
    seeding.seed_baselines(study, space, seeding.seeding_plan("all"), n_trials=12)
    study.optimize(_objective(space, objectives), n_trials=10, catch=(FloatingPointError,))
    study.enqueue_trial({})  # a waiting trial
    return study


def _get(app, path: str) -> tuple[str, bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


@pytest.mark.parametrize("objectives", [("val_accuracy",), ("val_accuracy", "params")])
def test_every_dashboard_panel_answers_200(tmp_path, objectives):
    study = _study(tmp_path, objectives)
    states = {t.state.name for t in study.trials}
    assert {"COMPLETE", "FAIL", "WAITING"} <= states
    assert any("baseline" in t.user_attrs for t in study.trials)
    if len(objectives) == 1:
        assert "PRUNED" in states
    app = optuna_dashboard.wsgi(study._storage)
    study_id = study._study_id
    paths = ["/api/meta", "/api/studies", f"/api/studies/{study_id}",
             f"/api/studies/{study_id}/param_importances", f"/csv/{study_id}",
             *(f"/api/studies/{study_id}/plot/{p}" for p in PLOTS)]
    if len(objectives) > 1:
        paths.append(f"/api/studies/{study_id}/plot/pareto_front")
    failed = {}
    for path in paths:
        status, body = _get(app, path)
        if not status.startswith("200"):
            failed[path] = (status, body[:300])
    assert not failed
    detail = json.loads(_get(app, f"/api/studies/{study_id}")[1])
    assert study.metric_names == list(objectives)  # the CSV and Optuna name the values
    header = _get(app, f"/csv/{study_id}")[1].decode().splitlines()[0].split(",")
    assert header[2:2 + len(objectives)] == list(objectives)  # not "Objective 0"
    assert len(detail["trials"]) == len(study.trials)
