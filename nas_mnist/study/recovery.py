"""Dead trials: find trials whose worker died, fail them, close their MLflow runs, retry once.

A trial records the worker that runs it: ``hostname:pid:start``, where ``start`` identifies the
process beyond its PID (``process_start_token``: the boot id and the process's start time in clock
ticks since boot, field 22 of ``/proc/<pid>/stat``). PIDs are reused; a live process with the
recorded PID but another start time is not the worker. A worker that dies without a word
(SIGKILL, power loss) leaves its trial RUNNING. Two checks end such trials:

- at start-up, a RUNNING trial of a worker on this host whose process no longer exists (or whose
  PID now belongs to another process), or whose heartbeat is stale, is failed at once
  (``recover_dead_trials``): re-running the same command after a kill resumes cleanly;
- on RDB storages, Optuna's heartbeat fails a trial whose worker has been silent for longer than
  the grace period, wherever it ran (``study.make_storage``), and calls ``handle_dead_trial``.

Either way, the trial's MLflow run is closed as KILLED, a model it was logging when it died (an
MLflow logged model left PENDING) is finalized as FAILED, and its configuration is enqueued once
more (a retry of a retry is not retried). A trial interrupted by SIGINT or SIGTERM, or failed
because the tracking server went away, is retried the same way (``requeue_trial``): its
configuration did nothing wrong. The retry runs before the other queued trials (seeded baselines):
a study opened by ``opening.open_study`` gives out queued retries first.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nas_mnist.environment import pid_alive
from nas_mnist.trial_attributes import (
    BASELINE_ATTR,
    EXPERIMENT_ATTR,
    IN_SPACE_ATTR,
    REASON_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
    WORKER_ATTR,
)

logger = logging.getLogger(__name__)



def process_start_token(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later process with the same PID.

    ``<boot id>.<start time>``: the first 8 characters of ``/proc/sys/kernel/random/boot_id``
    (a new random id at each boot) and the process's start time in clock ticks after boot, field
    22 of ``/proc/<pid>/stat`` (proc(5)). Together they name one process on one machine for ever.

    Returns:
        The token, or None where ``/proc`` does not exist (not Linux) or the process is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # Field 2, the command name, is in parentheses and may hold spaces or ')': split after the
    # last ')'. The fields after it start at field 3, so field 22 is index 19.
    fields = stat[stat.rfind(")") + 2 :].split()
    return f"{boot[:8]}.{fields[19]}" if len(fields) > 19 else None


def worker_id() -> str:
    """This process as ``hostname:pid:start`` (``hostname:pid`` where /proc does not exist)."""
    pid = os.getpid()
    token = process_start_token(pid)
    return f"{socket.gethostname()}:{pid}" + (f":{token}" if token else "")


def parse_worker(worker: str) -> tuple[str, int, str | None] | None:
    """``hostname:pid[:start]`` -> (hostname, pid, start or None); None if unparsable."""
    parts = worker.split(":")
    if len(parts) >= 3 and parts[-2].isdigit() and "." in parts[-1]:
        return ":".join(parts[:-2]), int(parts[-2]), parts[-1]
    if len(parts) >= 2 and parts[-1].isdigit():  # written before start tokens existed
        return ":".join(parts[:-1]), int(parts[-1]), None
    return None


def worker_alive(worker: str) -> bool | None:
    """Whether the worker ``hostname:pid[:start]`` is still running.

    Returns:
        False if no process has that PID, or if the process with that PID has another start token
        (the PID was reused: that process is not the worker); True if the process exists (and,
        when the worker has a start token, has the same one); None if the worker runs on another
        host, or its id cannot be read: then only its heartbeat can tell.
    """
    parsed = parse_worker(worker)
    if parsed is None or parsed[0] != socket.gethostname():
        return None
    _, pid, start = parsed
    if pid == os.getpid():
        return start is None or start == process_start_token(pid)
    if not pid_alive(pid):
        return False
    if start is not None:
        now = process_start_token(pid)
        if now is not None and now != start:
            return False
    return True


def stale_trial_numbers(study: Any) -> set[int]:
    """Numbers of the RUNNING trials whose heartbeat is older than the storage's grace period.

    Empty for storages without heartbeats (in-memory, or RDB without ``heartbeat_interval``).
    Trials that never sent a heartbeat are not stale (Optuna's own rule).
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage  # the heartbeat API is on the storage
    if not is_heartbeat_enabled(storage):
        return set()
    try:
        stale_ids = set(storage._get_stale_trial_ids(study._study_id))
    except Exception:  # an unreadable heartbeat table proves nothing
        logger.debug("could not read the heartbeats of study %s", study.study_name, exc_info=True)
        return set()
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t._trial_id in stale_ids}


def handle_dead_trial(study: Any, trial: FrozenTrial, tracker: Any | None, reason: str) -> None:
    """Close a dead (already FAIL) trial's MLflow run as KILLED, with the model it was logging
    when it died finalized as FAILED (``Tracker.end_trial_run``), and enqueue its config once
    more."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    if tracker is not None and run_id:
        try:
            tracker.end_trial_run(run_id, "killed", reason, study.user_attrs.get(EXPERIMENT_ATTR))
        except Exception:
            logger.warning("could not close MLflow run %s of dead trial %d", run_id, trial.number)
    requeue_trial(study, trial.number, trial.params, trial.user_attrs, reason)


def requeue_trial(
    study: Any, number: int, params: dict[str, Any], user_attrs: dict[str, Any], reason: str
) -> bool:
    """Enqueue a failed trial's configuration once more, unless it is itself a retry.

    The new trial gets the same params and the same baseline attributes (so a retried baseline
    stays that baseline in the comparison), plus ``retry_of`` = ``number``, by which
    ``opening.RetriesFirstStudy`` starts it before the trials queued ahead of it.

    Args:
        study: the ``optuna.Study``.
        number: the failed trial's number.
        params: its params (``trial.params``).
        user_attrs: its user attributes (``trial.user_attrs``).
        reason: why it failed, for the log.

    Returns:
        True if enqueued; False if the trial was already a retry (a retry is not retried).
    """
    if RETRY_OF_ATTR in user_attrs:
        logger.warning("trial %d failed again (%s); its configuration is not retried a second "
                       "time", number, reason)
        return False
    attrs = {k: user_attrs[k] for k in (BASELINE_ATTR, IN_SPACE_ATTR) if k in user_attrs}
    study.enqueue_trial(dict(params), user_attrs={**attrs, RETRY_OF_ATTR: number})
    logger.warning("trial %d ended as failed (%s); its configuration is queued for one retry",
                   number, reason)
    return True


def recover_dead_trials(study: Any, tracker: Any | None) -> list[int]:
    """Fail the RUNNING trials whose worker is dead: its process on this host is gone (or its PID
    belongs to another process now), or its heartbeat is stale (the last word, wherever it ran).

    Returns:
        The numbers of the trials that were failed (and queued for a retry).
    """
    recovered = []
    storage = study._storage  # Optuna's storage API, as fail_stale_trials uses
    stale = stale_trial_numbers(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if trial.number in stale:
            reason = f"killed: its worker {worker or '(unknown)'} sent no heartbeat"
        elif worker and worker_alive(worker) is False:
            reason = f"killed: its worker {worker} is gone"
        else:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, reason)
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except Exception:  # another worker finished it first
            continue
        handle_dead_trial(study, storage.get_trial(trial._trial_id), tracker, reason)
        recovered.append(trial.number)
    return recovered


def live_workers(study: Any) -> set[str]:
    """Workers on this host, other than this process, that run a trial of ``study`` now.

    A worker counts as live if its process (same PID and start time) exists and its trial's
    heartbeat is not stale.
    """
    me = worker_id()
    stale = stale_trial_numbers(study)
    return {t.user_attrs[WORKER_ATTR]
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(WORKER_ATTR) not in (None, me) and t.number not in stale
            and worker_alive(t.user_attrs[WORKER_ATTR])}


def _run_state(trial: FrozenTrial) -> str:
    """The ``Tracker.end_trial_run`` state of a trial that is no longer running."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    reason = str(trial.user_attrs.get(REASON_ATTR, ""))
    return "killed" if reason == "interrupted" or reason.startswith("killed") else "failed"


def close_orphan_runs(study: Any, tracker: Any, parent_run_id: str | None = None) -> list[str]:
    """Close the study's MLflow runs left RUNNING by a search that could not close them.

    A search whose tracking server went away (or that was killed while the server was down)
    leaves its trial runs and its parent run RUNNING. This closes, in the study's experiment:
    each trial run whose Optuna trial is no longer RUNNING (with that trial's state and reason),
    each trial run of a finished trial that never recorded it (stopped in between; KILLED),
    and each parent run other than ``parent_run_id`` (as KILLED); the logged models that a
    closed run left PENDING are finalized as FAILED (``Tracker.fail_pending_models``).

    Args:
        study: the ``optuna.Study`` (its ``mlflow_experiment_id`` user attribute names the
            experiment; nothing is done without it).
        tracker: the ``Tracker``.
        parent_run_id: the parent run of the search now starting, left as it is.

    Returns:
        The ids of the runs closed.
    """
    experiment_id = study.user_attrs.get(EXPERIMENT_ATTR)
    if not experiment_id:
        return []
    running = tracker.client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=10_000
    )
    if not running:
        return []
    all_trials = study.get_trials(deepcopy=False)
    trials = {t.user_attrs[RUN_ATTR]: t for t in all_trials if RUN_ATTR in t.user_attrs}
    unrecorded = {str(t.number): t for t in all_trials if t.state != TrialState.RUNNING}
    closed = []
    for run in running:
        run_id, tags = run.info.run_id, run.data.tags
        role = tags.get("nas_mnist.role")
        if (role == "study" and run_id != parent_run_id
                and tags.get("engine") != "keras-tuner"):  # KerasTuner's own parents
            tracker.finish_parent_run(run_id, "KILLED")
            state = "killed"
        elif role == "trial" and run_id in trials and trials[run_id].state != TrialState.RUNNING:
            trial, state = trials[run_id], _run_state(trials[run_id])
            reason = trial.user_attrs.get(REASON_ATTR) or "left running by an earlier search"
            tracker.end_trial_run(run_id, state, reason, experiment_id)
        elif (role == "trial" and run_id not in trials
              and tags.get("optuna.study_name") == study.study_name
              and tags.get("optuna.trial_number") in unrecorded):
            # Stopped between creating the run and recording it on its trial: the trial ended
            # without it.
            state = "killed"
            tracker.end_trial_run(run_id, state, "interrupted before its trial recorded this run",
                                  experiment_id)
        else:
            continue
        if role == "study" or state in ("complete", "pruned"):  # end_trial_run did the others
            tracker.fail_pending_models(run_id, experiment_id)  # its process is gone
        closed.append(run_id)
    return closed
