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
from nas_mnist.errors import TrialFailure
from nas_mnist.tracking.redaction import hide_password, redact_uri
from nas_mnist.tracking.sqlite_locks import call_retrying_locks, quiet_lock_tracebacks
from nas_mnist.tracking.stores import (
    TrackingError,
    open_client,
    validate_tracking_uri,  # noqa: F401  (imported from here by settings, retrain and tests)
)
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


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""The experiment tag MLflow 3's UI reads to choose between its GenAI view (traces,
"evaluation runs", "agent versions") and its classic-ML view (runs, metrics, models): nas-mnist's
experiments are classic ML. Values from MLflow's UI (``ExperimentKind`` in
``mlflow/server/js``: ``genai_development``, ``custom_model_development``, ...)."""


class TrackingUnavailableError(TrialFailure):
    """The tracking server stopped answering during the search (after MLflow's bounded retries).

    A runtime failure, not bad input: the CLI exits with status 1 and says to start the server
    again and resume (``hint``); the running trial records ``reason`` and is queued for a retry.

    Once raised, the ``Tracker`` stays unavailable: its later calls raise at once instead of
    waiting for the retries again, so the running trial, the parent run's refresh and the
    clean-up all end within seconds.
    """

    reason = "tracking_unavailable"
    hint = "Start the tracking server again, then run the same command to resume."


HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
"""MLflow HTTP settings nas-mnist uses unless the user set them (environment variables).

MLflow's own defaults (``mlflow.environment_variables``: 7 retries, backoff factor 2, a
120-second timeout per request) keep a client retrying a dead server for minutes. With these, one
request gives up after at most 3 tries of 15 s plus about 2 s of backoff (urllib3 sleeps
factor * 2**(n - 1) seconds before the n-th retry, none before the first): about 50 s for a
server that hangs, about 2 s for one that refuses connections."""

FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
"""Settings for the clean-up after SIGINT/SIGTERM (``Tracker.fail_fast``): one try of 2 s."""


RUN_DESCRIPTION_TAG = "mlflow.note.content"
"""The tag MLflow's UI shows (and edits) as a run's description."""


def apply_http_defaults() -> dict[str, str]:
    """Set each of ``HTTP_DEFAULTS`` in ``os.environ`` unless the user set it already.

    Returns:
        The settings now in effect (the user's where set).
    """
    return {key: os.environ.setdefault(key, value) for key, value in HTTP_DEFAULTS.items()}


def _is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says that the tracking server did not answer (MLflow's HTTP client wraps
    every connection error, timeout and exhausted retry as 'API request to URL failed ...')."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    return type(exc).__name__ == "MlflowException" and str(exc).startswith("API request to ")


def _why_unreachable(exc: BaseException) -> str:
    """A few words from MLflow's long error: connection refused, timed out, or its first line."""
    text = str(exc)
    lowered = text.lower()
    for words, why in (("connection refused", "connection refused"),
                       ("timed out", "timed out"), ("timeout", "timed out"),
                       ("too many", "too many error responses"),
                       ("name or service not known", "unknown host")):
        if words in lowered:
            return f"{why}, after {os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '?')} retries"
    return (text.strip().splitlines() or [type(exc).__name__])[0][:200]


class _GuardedClient:
    """An ``MlflowClient`` whose calls raise ``TrackingUnavailableError`` once the server is gone.

    Every method of the wrapped client is wrapped: a call that fails because the server does not
    answer marks the tracker unavailable and raises ``TrackingUnavailableError`` naming the
    server; every later call raises it at once, without a network request.
    """

    def __init__(self, client: Any, tracker: Tracker) -> None:
        self._client = client
        self._tracker = tracker

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        tracker = self._tracker

        def call(*args: Any, **kwargs: Any) -> Any:
            if tracker.unavailable is not None:
                raise tracker.unavailable
            try:  # a SQLite store another process holds locked: tried again (sqlite_locks)
                return call_retrying_locks(attr, *args, retry=not tracker.failing_fast, **kwargs)
            except Exception as exc:
                if not _is_unreachable(exc):
                    raise
                tracker.unavailable = TrackingUnavailableError(
                    f"the MLflow tracking server {redact_uri(tracker.tracking_uri)} stopped "
                    f"answering ({_why_unreachable(exc)})"
                )
                raise tracker.unavailable from None

        return call


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default.

    MLflow 3's default is ``sqlite:///mlflow.db`` in the working directory.
    """
    if uri:
        return uri
    import mlflow

    return mlflow.get_tracking_uri()


def _plain(value: Any) -> Any:
    """A sampled value as a person writes it: floats without binary noise
    (0.30000000000000004 -> 0.3; 12 significant digits)."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


def _now_ms() -> int:
    return int(time.time() * 1000)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Tracker:
    """Logs a study's trials to MLflow.

    Every request to a tracking server is bounded (``apply_http_defaults``, applied here). If the
    server stops answering, the call raises ``TrackingUnavailableError`` and so does every later
    call, at once; ``unavailable`` then holds that error.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///m.db``, ``http://127.0.0.1:5000``, ...);
            ``None`` uses ``MLFLOW_TRACKING_URI`` or MLflow's default.

    Raises:
        TrackingError: MLflow 3's file store, or a store another MLflow version made
            (``stores.open_client``); from ``check``, a store that cannot be reached.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        apply_http_defaults()
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.unavailable: TrackingUnavailableError | None = None
        self.failing_fast = False
        quiet_lock_tracebacks()
        what = None  # how a refusal names the URI: by where it came from
        if self.tracking_uri == os.environ.get("MLFLOW_TRACKING_URI"):
            what = f"{redact_uri(self.tracking_uri)} ($MLFLOW_TRACKING_URI)"
        elif not tracking_uri:  # MLflow 3 keeps its old default where ./mlruns holds runs
            what = f"{self.tracking_uri} (MLflow's default where ./mlruns holds runs)"
        # MLflow opens (or creates) the store here: a file store or another MLflow version's
        # schema raises TrackingError before anything else is done.
        self.client = _GuardedClient(open_client(self.tracking_uri, what), self)

    def check_unreachable(self, exc: BaseException) -> None:
        """For calls made outside ``client`` (MLflow's fluent API): if ``exc`` says the server
        did not answer, mark the tracker unavailable and raise ``TrackingUnavailableError``.

        Raises:
            TrackingUnavailableError: ``exc`` is a connection failure (else nothing happens).
        """
        if self.unavailable is None and _is_unreachable(exc):
            self.unavailable = TrackingUnavailableError(
                f"the MLflow tracking server {redact_uri(self.tracking_uri)} stopped answering "
                f"({_why_unreachable(exc)})"
            )
        if self.unavailable is not None and _is_unreachable(exc):
            raise self.unavailable from None

    def fail_fast(self) -> None:
        """From now on, give up on a silent server after one try of 2 seconds (``FAIL_FAST``).

        For the clean-up after SIGINT/SIGTERM: the process is going away, and closing its runs
        must not keep the user waiting. Changes this process's environment.
        """
        os.environ.update(FAIL_FAST)
        self.failing_fast = True  # and no retries of a locked SQLite store

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
                f"cannot reach the MLflow tracking store {redact_uri(self.tracking_uri)!r}: "
                f"{hide_password(first_line, self.tracking_uri)}. "
                "Start the tracking server, or pass --tracking-uri sqlite:///mlflow.db"
            ) from None

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing, tagged as a classic-ML experiment
        (``EXPERIMENT_KIND_TAG``) when created or attached.

        Raises:
            TrackingError: the experiment is deleted (``check_experiment``): restoring it
                silently would undo the user's deletion, and MLflow cannot make another of the
                same name.
        """
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(
                    name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except Exception:  # another worker created it first
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
            else:
                return experiment_id
        if experiment.lifecycle_stage == "deleted":
            raise self._deleted(experiment, "")
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                           EXPERIMENT_KIND)
        return experiment.experiment_id

    def check_experiment(self, study_name: str) -> None:
        """Refuse a study whose MLflow experiment (named after it) was deleted, e.g. in the
        MLflow UI between two searches; a missing experiment is fine (it is created).

        Raises:
            TrackingError: one line with the command that restores the experiment (its runs
                come back with it) and the other way out, another ``--study-name``.
        """
        experiment = self.client.get_experiment_by_name(study_name)
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            raise self._deleted(experiment, ", or pass another --study-name")

    def _deleted(self, experiment: Any, alternative: str) -> TrackingError:
        shown = redact_uri(self.tracking_uri)
        return TrackingError(
            f"the MLflow experiment {experiment.name!r} (id {experiment.experiment_id}) is "
            f"deleted in {shown}; restore it with: MLFLOW_TRACKING_URI={shown} mlflow "
            f"experiments restore --experiment-id {experiment.experiment_id}{alternative}")

    def attach_parent_run(self, study: Any) -> str:
        """The study's parent run: reattached from the study's user attributes, or created.

        Sets it RUNNING while the search runs; ``finish_parent_run`` closes it. Stores the ids
        in the study's user attributes, and the tracking URI without its password
        (``redact_uri``; ``study.memory.study_tracking_uri`` reads it back). Workers of one
        study call it under a storage lock, so that all of them share one parent run.

        Args:
            study: the ``optuna.Study``.

        Raises:
            TrackingError: the study's experiment is deleted (``check_experiment``).
        """
        self.check_experiment(study.study_name)
        attrs = study.user_attrs
        run_id = attrs.get(PARENT_RUN_ATTR)
        if (
            run_id
            and redact_uri(attrs.get(TRACKING_URI_ATTR)) == redact_uri(self.tracking_uri)
            and self._run_exists(run_id)
        ):
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        if run_id:
            logger.warning(
                "study %r was logged to another MLflow store (%s); starting a new parent run in %s",
                study.study_name,
                redact_uri(attrs.get(TRACKING_URI_ATTR)),
                redact_uri(self.tracking_uri),
            )
        experiment_id, run_id = self.create_parent_run(study.study_name)
        study.set_user_attr(EXPERIMENT_ATTR, experiment_id)
        study.set_user_attr(TRACKING_URI_ATTR, redact_uri(self.tracking_uri))  # no password
        study.set_user_attr(PARENT_RUN_ATTR, run_id)
        return run_id

    def create_parent_run(self, study_name: str,
                          tags: Mapping[str, str] | None = None) -> tuple[str, str]:
        """A new parent run of a study, the one place its tags are defined.

        Args:
            study_name: the study; the experiment and the run are named after it.
            tags: more tags (the KerasTuner engine adds ``engine`` and ``tuner``).

        Returns:
            (experiment_id, run_id).

        Raises:
            TrackingError: the study's experiment is deleted (``check_experiment``).
        """
        self.check_experiment(study_name)
        experiment_id = self.experiment_id(study_name)
        description = (f"nas-mnist study '{study_name}': each trial is a nested run; the "
                       "search's settings are this run's params")
        run = self.client.create_run(
            experiment_id, run_name=study_name,
            tags={"nas_mnist.role": "study", "optuna.study_name": study_name,
                  RUN_DESCRIPTION_TAG: description, **(tags or {})},
        )
        return experiment_id, run.info.run_id

    def _run_exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except Exception:
            return False

    def finish_parent_run(self, run_id: str, status: str = "FINISHED") -> bool:
        """Mark the parent run ended (``FINISHED``, ``FAILED`` or ``KILLED``).

        Never raises: it runs in ``finally`` blocks, where an error would hide the search's own
        outcome. A run that cannot be closed now (the server is gone) is closed by the next
        search of the study (``recovery.close_orphan_runs``).

        Returns:
            True if the run was closed.
        """
        try:
            self.client.set_terminated(run_id, status=status)
            return True
        except Exception as exc:  # any failure: see the docstring
            logger.warning("could not close the parent run %s as %s: %s", run_id, status, exc)
            return False

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
        baseline = (tags or {}).get("baseline")
        all_tags = {
            "nas_mnist.role": "trial",
            "optuna.study_name": study_name,
            "optuna.trial_number": str(trial_number),
            "state": "running",
            RUN_DESCRIPTION_TAG: f"trial {trial_number} of nas-mnist study '{study_name}'"
                                 + (f": the hand-built baseline {baseline}" if baseline else ""),
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

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], step: int = 0,
        model_id: str | None = None,
    ) -> None:
        """Log numeric metrics at ``step`` (epoch index for per-epoch curves); NaN/inf skipped.

        With ``model_id`` (a logged model of the run), the metrics are also the model's, shown
        in MLflow 3's model view."""
        from mlflow.entities import Metric

        now = _now_ms()
        items = [
            Metric(k, float(v), now, step, model_id=model_id)
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
            run_id, {**spec.flat_params(),
                     **{f"space.{k}": _plain(v) for k, v in space_params.items()}}
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

    def end_trial_run(self, run_id: str, state: str, reason: str | None = None,
                      experiment_id: str | None = None) -> None:
        """Close a trial's run with its state ("complete", "pruned", "failed", "killed").

        A failed or killed run's logged models still PENDING are finalized as FAILED
        (``fail_pending_models``): once its run is closed, nothing will finish them (Ctrl-C in
        ``log_model`` leaves one, as a killed worker does).

        Args:
            run_id: the trial's run.
            state: the trial's state.
            reason: why it ended (the run's ``reason`` tag, cut to 5000 characters).
            experiment_id: the run's experiment, if known (saves a request).
        """
        tags = {"state": state, **self._state_in_run_name(run_id, state)}
        if reason:
            tags["reason"] = reason[:5000]
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, status=RUN_STATUS[state])
        if state in ("failed", "killed"):
            self.fail_pending_models(run_id, experiment_id)

    def _state_in_run_name(self, run_id: str, state: str) -> dict[str, str]:
        """``{"mlflow.runName": "trial-0007 (pruned)"}`` for a run that did not complete: the runs
        table shows a pruned run FINISHED (it ran correctly), so its name says it. Empty for a
        complete run, a name that already says it, or a run that cannot be read (the closing
        requests then report the store's error)."""
        if state == "complete":
            return {}
        try:
            name = self.client.get_run(run_id).info.run_name or ""
        except Exception:
            return {}
        suffix = f" ({state})"
        return {"mlflow.runName": name + suffix} if name and not name.endswith(suffix) else {}

    def fail_pending_models(self, run_id: str, experiment_id: str | None = None) -> list[str]:
        """Finalize as FAILED the logged models of run ``run_id`` still PENDING.

        MLflow 3 creates a logged model PENDING, uploads its files, then finalizes it READY (or
        FAILED on an ``Exception``): a worker killed in between, or interrupted (Ctrl-C is not an
        ``Exception``), leaves it PENDING for ever. Call this only for a run whose process no
        longer logs to it (a closed run). Never raises: a failure is logged as a warning.

        Args:
            run_id: the run (``source_run_id`` of its models).
            experiment_id: the run's experiment (None: read from the run).

        Returns:
            The ids of the models finalized as FAILED (each named in a warning line).
        """
        from mlflow.entities import LoggedModelStatus

        failed: list[str] = []
        try:
            if experiment_id is None:
                experiment_id = self.client.get_run(run_id).info.experiment_id
            # MLflow 3.17's SQL store matches no model on "status = 'PENDING'" (it stores the
            # status as a number): the status is compared here.
            for model in self.client.search_logged_models(
                    [experiment_id], filter_string=f"source_run_id = '{run_id}'"):
                if model.status == LoggedModelStatus.PENDING:
                    self.client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
                    failed.append(model.model_id)
        except Exception as exc:  # any failure: closing the run came first, and it is done
            text = str(exc).strip()
            logger.warning("could not finalize the half-logged models of MLflow run %s: %s",
                           run_id, text.splitlines()[0] if text else type(exc).__name__)
        if failed:
            logger.warning("MLflow run %s left %d model(s) half-logged (PENDING): finalized as "
                           "FAILED (%s)", run_id, len(failed), ", ".join(failed))
        return failed

    def run_url(self, experiment_id: str, run_id: str | None = None) -> str:
        """Where to look: the tracking URI plus the experiment/run path used by the MLflow UI."""
        path = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
        return f"{redact_uri(self.tracking_uri)} {path}"


@dataclass(frozen=True)
class StudyRuns:
    """Where the MLflow runs of a study's trials go.

    Attributes:
        tracker: the ``Tracker`` of the tracking store.
        experiment_id: the study's experiment.
        parent_run_id: the study's parent run; trial runs nest under it (``None``: not nested).
        dataset: the data's MLflow dataset (``datasets.mnist_dataset``), logged as an input of
            each trial run; None: none logged.
    """

    tracker: Tracker
    experiment_id: str
    parent_run_id: str | None = None
    dataset: Any = None

    def start_trial_run(
        self,
        trial_number: int,
        study_name: str,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
    ) -> str:
        """Create the run of one trial under the parent run, with the dataset input; returns
        its id."""
        run_id = self.tracker.start_trial_run(
            self.experiment_id, self.parent_run_id, trial_number, study_name, tags, run_name
        )
        if self.dataset is not None:
            from nas_mnist.tracking.datasets import log_dataset

            log_dataset(self.tracker.client, run_id, self.dataset)
        return run_id

