"""MLflow tracking: one experiment and one parent run per study, one nested run per trial.

Written with ``mlflow.MlflowClient`` and explicit run ids (not the fluent ``mlflow.start_run``
stack, and not Optuna's deprecated ``MLflowCallback``), so that a resumed study reattaches to the
same parent run and several workers can log into one experiment at once.

The link between Optuna and MLflow is stored on the Optuna side: the study's user attributes
hold the experiment and parent-run ids, each trial's user attributes hold its run id.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nas_mnist.environment import temporary_environ
from nas_mnist.errors import InputError
from nas_mnist.trial_attributes import (
    EXPERIMENT_ATTR,
    PARENT_RUN_ATTR,
    TRACKING_URI_ATTR,
)

logger = logging.getLogger(__name__)


# MLflow limits (mlflow.utils.validation): 1000 metrics / 100 params / 100 tags per log_batch,
# and 6000 characters per param value.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAM_LENGTH = 6000

RUN_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
"""MLflow run status for each trial state (a pruned trial ran correctly: its run is FINISHED)."""


class TrackingError(InputError, RuntimeError):
    """The MLflow tracking store cannot be reached or used; the message says which URI."""


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default.

    MLflow 3's default is ``sqlite:///mlflow.db`` in the working directory.
    """
    if uri:
        return uri
    import mlflow

    return mlflow.get_tracking_uri()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Tracker:
    """Logs a study's trials to MLflow.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///m.db``, ``http://127.0.0.1:5000``, ...);
            ``None`` uses ``MLFLOW_TRACKING_URI`` or MLflow's default.

    Raises:
        TrackingError: from ``check``, when the store cannot be reached.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)

    # --- set-up --------------------------------------------------------------------------------

    def check(self, timeout_seconds: float = 10.0) -> None:
        """Fail fast if the tracking store is unreachable (one cheap request, no retries).

        Raises:
            TrackingError: the store did not answer within ``timeout_seconds``.
        """
        from mlflow import MlflowClient

        try:
            with temporary_environ(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                                   MLFLOW_HTTP_REQUEST_TIMEOUT=str(math.ceil(timeout_seconds))):
                MlflowClient(tracking_uri=self.tracking_uri).search_experiments(max_results=1)
        except Exception as exc:  # MLflow raises many types (requests, sqlalchemy, MlflowException)
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise TrackingError(
                f"cannot reach the MLflow tracking store {self.tracking_uri!r}: {first_line}. "
                "Start the tracking server, or pass --tracking-uri sqlite:///mlflow.db"
            ) from None

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing (restored if deleted)."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name)
            except Exception:  # another worker created it first
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def attach_parent_run(self, study: Any, wait_seconds: float = 0.0) -> str:
        """The study's parent run: reattached from the study's user attributes, or created.

        Sets it RUNNING while the search runs; ``finish_parent_run`` closes it. Stores the ids
        in the study's user attributes.

        Args:
            study: the ``optuna.Study``.
            wait_seconds: a worker that did not create the study waits up to this long for the
                creating worker to store the parent run, so that all workers share one.
        """
        deadline = time.monotonic() + wait_seconds
        attrs = study.user_attrs
        while PARENT_RUN_ATTR not in attrs and time.monotonic() < deadline:
            time.sleep(0.5)
            attrs = study.user_attrs
        run_id = attrs.get(PARENT_RUN_ATTR)
        if (
            run_id
            and attrs.get(TRACKING_URI_ATTR) == self.tracking_uri
            and self._run_exists(run_id)
        ):
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        if run_id:
            logger.warning(
                "study %r was logged to another MLflow store (%s); starting a new parent run in %s",
                study.study_name,
                attrs.get(TRACKING_URI_ATTR),
                self.tracking_uri,
            )
        experiment_id = self.experiment_id(study.study_name)
        run = self.client.create_run(
            experiment_id,
            run_name=study.study_name,
            tags={"nas_mnist.role": "study", "optuna.study_name": study.study_name},
        )
        study.set_user_attr(EXPERIMENT_ATTR, experiment_id)
        study.set_user_attr(TRACKING_URI_ATTR, self.tracking_uri)
        study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
        return run.info.run_id

    def _run_exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except Exception:
            return False

    def finish_parent_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark the parent run ended (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        self.client.set_terminated(run_id, status=status)

    # --- trials --------------------------------------------------------------------------------

    def start_trial_run(
        self,
        experiment_id: str,
        parent_run_id: str | None,
        trial_number: int,
        study_name: str,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
    ) -> str:
        """Create the run of one trial (nested under ``parent_run_id`` if given); return its id."""
        all_tags = {
            "nas_mnist.role": "trial",
            "optuna.study_name": study_name,
            "optuna.trial_number": str(trial_number),
            "state": "running",
            **(tags or {}),
        }
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(
            experiment_id, run_name=run_name or f"trial-{trial_number:04d}", tags=all_tags
        )
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log flat params (values become strings, cut to MLflow's 6000-character limit)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:_MAX_PARAM_LENGTH]) for k, v in params.items()]
        for chunk in _chunks(items, _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log numeric metrics at ``step`` (epoch index for per-epoch curves); NaN/inf skipped."""
        from mlflow.entities import Metric

        now = _now_ms()
        items = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for chunk in _chunks(items, _MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def log_trial_spec(
        self, run_id: str, spec: Any, space_params: Mapping[str, Any], trial_number: int
    ) -> None:
        """What a trial trains: the spec's flat params plus the sampled search-space params (as
        ``space.<name>``), ``spec.json``, and the metrics num_params and trial_number. Shared by
        the Optuna objective and the KerasTuner engine, so their runs look alike."""
        self.log_params(
            run_id, {**spec.flat_params(), **{f"space.{k}": v for k, v in space_params.items()}}
        )
        self.log_text(run_id, spec.to_json(indent=2), "spec.json")
        self.log_metrics(run_id, {"num_params": spec.num_params, "trial_number": trial_number})

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> str:
        """Upload a file; returns its artifact URI (``runs:/<run_id>/<artifact_path>/<name>``)."""
        self.client.log_artifact(run_id, local_path, artifact_path)
        name = os.path.basename(local_path)
        return f"runs:/{run_id}/{artifact_path + '/' if artifact_path else ''}{name}"

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def end_trial_run(self, run_id: str, state: str, reason: str | None = None) -> None:
        """Close a trial's run with its state ("complete", "pruned", "failed", "killed")."""
        tags = {"state": state}
        if reason:
            tags["reason"] = reason[:5000]
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, status=RUN_STATUS[state])

    def run_url(self, experiment_id: str, run_id: str | None = None) -> str:
        """Where to look: the tracking URI plus the experiment/run path used by the MLflow UI."""
        path = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
        return f"{self.tracking_uri} {path}"


@dataclass(frozen=True)
class StudyRuns:
    """Where the MLflow runs of a study's trials go.

    Attributes:
        tracker: the ``Tracker`` of the tracking store.
        experiment_id: the study's experiment.
        parent_run_id: the study's parent run; trial runs nest under it (``None``: not nested).
    """

    tracker: Tracker
    experiment_id: str
    parent_run_id: str | None = None

    def start_trial_run(
        self,
        trial_number: int,
        study_name: str,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
    ) -> str:
        """Create the run of one trial under the parent run; returns its id."""
        return self.tracker.start_trial_run(
            self.experiment_id, self.parent_run_id, trial_number, study_name, tags, run_name
        )

