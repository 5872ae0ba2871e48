"""Dead trials: find trials whose worker died, fail them, close their MLflow runs, retry once.

A trial records the worker that runs it (``hostname:pid``). A worker that dies without a word
(SIGKILL, power loss) leaves its trial RUNNING. Two checks end such trials:

- at start-up, a RUNNING trial of a worker on this host whose process no longer exists is failed at
  once (``recover_dead_trials``): re-running the same command after a kill resumes cleanly;
- on RDB storages, Optuna's heartbeat fails a trial whose worker has been silent for longer than
  the grace period, wherever it ran (``study.make_storage``), and calls ``handle_dead_trial``.

Either way, the trial's MLflow run is closed as KILLED and its configuration is enqueued once more
(a retry of a retry is not retried).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nas_mnist.environment import pid_alive
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    IN_SPACE_ATTR,
    REASON_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
    WORKER_ATTR,
)

logger = logging.getLogger(__name__)



def worker_id() -> str:
    """This process as ``hostname:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str) -> bool | None:
    """Whether the process ``hostname:pid`` exists; None if it runs on another host."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return pid_alive(int(pid))


def handle_dead_trial(study: Any, trial: FrozenTrial, tracker: Any | None, reason: str) -> None:
    """Close a dead (already FAIL) trial's MLflow run as KILLED and enqueue its config once more."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    if tracker is not None and run_id:
        try:
            tracker.end_trial_run(run_id, "killed", reason)
        except Exception:
            logger.warning("could not close MLflow run %s of dead trial %d", run_id, trial.number)
    if RETRY_OF_ATTR in trial.user_attrs:
        logger.warning("trial %d died again; its configuration is not retried a second time",
                       trial.number)
        return
    attrs = {k: trial.user_attrs[k] for k in (BASELINE_ATTR, IN_SPACE_ATTR)
             if k in trial.user_attrs}
    study.enqueue_trial(dict(trial.params), user_attrs={**attrs, RETRY_OF_ATTR: trial.number})
    logger.warning("trial %d ended as failed (%s); its configuration is queued for one retry",
                   trial.number, reason)


def recover_dead_trials(study: Any, tracker: Any | None) -> list[int]:
    """Fail the RUNNING trials whose worker process on this host is gone.

    Returns:
        The numbers of the trials that were failed (and queued for a retry).
    """
    recovered = []
    storage = study._storage  # noqa: SLF001 - Optuna's storage API is what fail_stale_trials uses
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if not worker or worker_alive(worker) is not False:
            continue
        reason = f"killed: its worker {worker} is gone"
        try:
            storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, reason)  # noqa: SLF001
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):  # noqa: SLF001
                continue
        except Exception:  # another worker finished it first
            continue
        handle_dead_trial(study, storage.get_trial(trial._trial_id), tracker, reason)  # noqa: SLF001
        recovered.append(trial.number)
    return recovered


def live_workers(study: Any) -> set[str]:
    """Workers on this host, other than this process, that run a trial of ``study`` now."""
    me = worker_id()
    return {t.user_attrs[WORKER_ATTR]
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(WORKER_ATTR) not in (None, me)
            and worker_alive(t.user_attrs[WORKER_ATTR])}
