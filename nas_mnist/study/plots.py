"""The study's plots: Optuna's optimization history, intermediate values, parallel coordinates,
parameter importances and Pareto front, as HTML and PNG files.

Parallel coordinates and parameter importances are computed on the architectures' numeric
encodings (``nas_mnist.tracking.trial_artifacts.numeric_params``), not on the raw search-space
params: the raw params are conditional (``conv5_kernel_size`` exists only for depth >= 5,
``learning_rate_adam`` only for Adam) and out-of-space baselines have none, and Optuna's
importance evaluators use only the params that every complete trial has, which would leave out
depth's consequences, the learning rate and every baseline.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas_mnist.architecture.spec import OPTIMIZERS, ArchitectureSpec
from nas_mnist.study.opening import study_objectives, val_accuracy_of
from nas_mnist.tracking.trial_artifacts import numeric_params
from nas_mnist.trial_attributes import trial_spec_data

logger = logging.getLogger(__name__)


def architecture_study(study: Any) -> Any:
    """An in-memory study whose params are the numeric encodings of each complete trial.

    One trial per complete trial of ``study`` that has a spec and a finite value (baselines
    included), with the same value (val_accuracy); the optimizer is a categorical param;
    encodings that are the same for every trial are left out. The user attribute ``trial``
    holds the original trial number.

    Returns:
        An ``optuna.Study`` (possibly without trials).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        spec = trial_spec_data(t)
        value = val_accuracy_of(t)
        if not spec or value is None or not math.isfinite(value):
            continue
        try:
            features = numeric_params(ArchitectureSpec.from_dict(spec))
        except ValueError:
            continue
        features.pop("optimizer_index")
        rows.append((t, features, spec["optimizer"]["name"]))
    distributions: dict[str, Any] = {}
    for key in rows[0][1] if rows else ():
        values = [features[key] for _, features, _ in rows]
        if min(values) < max(values):
            distributions[key] = FloatDistribution(min(values), max(values))
    if len({name for *_, name in rows}) > 1:
        distributions["optimizer"] = CategoricalDistribution(OPTIMIZERS)
    features_study = optuna.create_study(
        direction="maximize", study_name=f"{study.study_name}-architectures"
    )
    features_study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: (optimizer if k == "optimizer" else features[k]) for k in distributions},
                distributions=distributions,
                value=val_accuracy_of(t),
                user_attrs={"trial": t.number},
            )
            for t, features, optimizer in rows
        ]
    )
    return features_study


def _cached_evaluator(importances: Mapping[str, float]) -> Any:
    """An Optuna importance evaluator that returns ``importances`` (computed once, drawn twice)."""
    from optuna.importance._base import BaseImportanceEvaluator

    class Cached(BaseImportanceEvaluator):
        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict:
            return dict(importances)

    return Cached()


def write_study_plots(
    study: Any,
    out_dir: str | Path,
    importance: bool = True,
    include_plotlyjs: bool | str = True,
) -> tuple[list[Path], dict[str, str]]:
    """Write Optuna's optimization history, intermediate values (per-epoch val_accuracy of every
    trial), parallel coordinates and parameter importances as HTML and PNG; for a
    multi-objective study also the Pareto front (``pareto_front``).

    Parallel coordinates and importances use ``architecture_study(study)``; importances are
    fANOVA's (Optuna's default evaluator, seeded), also written as ``param_importances.json``.

    Args:
        study: the ``optuna.Study``.
        out_dir: an existing folder.
        importance: compute parameter importances (the slow part; see ``ParentRunRefresher``).
        include_plotlyjs: see ``plots.save_study_plot``.

    Returns:
        (files written, {plot: why it was skipped}) -- a plot is skipped when the study cannot
        support it yet (e.g. importances need two complete trials with different
        architectures); never raises for that.
    """
    writer = _PlotWriter(Path(out_dir), include_plotlyjs)
    _history_plots(writer, study)
    _architecture_plots(writer, study, importance)
    return writer.files, writer.skipped


class _PlotWriter:
    """Draws plots into one folder, collecting the files and the reasons for skipped ones."""

    def __init__(self, out_dir: Path, include_plotlyjs: bool | str) -> None:
        self.out_dir = out_dir
        self.include_plotlyjs = include_plotlyjs
        self.files: list[Path] = []
        self.skipped: dict[str, str] = {}

    def draw(self, kind: str, why_not: str | None, **kwargs: Any) -> None:
        from nas_mnist.plots import save_study_plot

        if why_not:
            self.skipped[kind] = why_not
            return
        try:
            self.files.extend(save_study_plot(kind, **kwargs, out_dir=self.out_dir,
                                              include_plotlyjs=self.include_plotlyjs))
        except Exception as exc:  # Optuna/plotly refusing an odd study must not stop the rest
            logger.warning("could not draw %s: %s", kind, exc, exc_info=True)
            self.skipped[kind] = f"{type(exc).__name__}: {exc}"


def _history_plots(writer: _PlotWriter, study: Any) -> None:
    """Optimization history, Pareto front (several objectives) and intermediate values."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    no_complete = None if complete else "no complete trial yet"
    objectives = study_objectives(study)
    multi = len(objectives) > 1
    writer.draw("optimization_history", no_complete, study=study, target_name="val_accuracy",
                **({"target": val_accuracy_of} if multi else {}))
    if multi:
        writer.draw("pareto_front", no_complete, study=study,
                    target_names=[n if n != "latency" else "latency_ms" for n in objectives])
    reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    writer.draw("intermediate_values",
                None if reported else "no trial has reported a val_accuracy yet", study=study)


def _architecture_plots(writer: _PlotWriter, study: Any, importance: bool) -> None:
    """Parallel coordinates and (if ``importance``) fANOVA importances of the encodings."""
    import optuna

    features = architecture_study(study)
    num_features = len(features.trials[0].params) if features.trials else 0
    too_few = None
    if len(features.trials) < 2 or num_features == 0:
        too_few = (
            f"needs at least 2 complete trials with different architectures; "
            f"{len(features.trials)} complete trial(s) with a spec so far"
        )
    writer.draw("parallel_coordinate", too_few, study=features, target_name="val_accuracy")
    if not importance:
        writer.skipped["param_importances"] = "not refreshed this time"
        return
    importances = None
    if too_few is None:
        try:
            importances = optuna.importance.get_param_importances(
                features, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
        except Exception as exc:
            too_few = f"importances not computable: {type(exc).__name__}: {exc}"
    if importances is not None:
        path = writer.out_dir / "param_importances.json"
        path.write_text(json.dumps(importances, indent=2) + "\n")
        writer.files.append(path)
    writer.draw("param_importances", too_few, study=features,
                evaluator=_cached_evaluator(importances or {}), target_name="val_accuracy")
