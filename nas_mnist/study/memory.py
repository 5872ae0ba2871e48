"""What a study remembers of its searches: its data (path and SHA-256), its search space
(SHA-256 of its content) and its settings.

A search stores them in the study's user attributes (names in ``nas_mnist.trial_attributes``)
and records the settings as params of the study's MLflow parent run. ``export``, ``report`` and
``baselines train`` then find the data without ``--data`` (``study_data``), and refuse, saying
what to pass, when the file is gone or its content changed; a resumed search refuses another
space (``searching.settings.check_resumed_space``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from nas_mnist.data import KERAS_SOURCE, DataFingerprint, data_fingerprint
from nas_mnist.errors import InputError
from nas_mnist.trial_attributes import (
    DATA_SHA256_ATTR,
    DATA_SOURCE_ATTR,
    SETTINGS_ATTR,
    SPACE_SHA256_ATTR,
    TRACKING_URI_ATTR,
)

logger = logging.getLogger(__name__)

_NOT_RECORDED = ("progress",)
"""Settings that do not change what a search computes."""

_URLS = ("storage", "tracking_uri")
"""Settings that are URLs: recorded without their password (``redact_uri``)."""


_SPACE_LABELS = ("name", "description")
"""Keys of a space file that label it without changing what the trials sample."""


def space_sha256(space: str | os.PathLike | None) -> str:
    """Hex SHA-256 of a search space's content: ``space`` as ``--space`` takes it (a file, the
    name of a shipped space, ``None`` for the default), parsed, without its name and
    description, as canonical JSON (sorted keys). The same space by name or by path, in YAML
    or JSON, reformatted or renamed, hashes the same; any changed choice or range does not.

    Raises:
        SearchSpaceError: the file is missing or cannot be parsed.
    """
    from nas_mnist.search_space.loading import read_space_file, resolve_space_path

    content = read_space_file(resolve_space_path(space))
    if isinstance(content, Mapping):
        content = {k: v for k, v in content.items() if k not in _SPACE_LABELS}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def settings_record(settings: Any, data: DataFingerprint) -> dict[str, Any]:
    """The settings of a search (a ``nas_mnist.SearchSettings``) as plain JSON values: every
    field but ``progress``, with the pruner resolved, the objectives as one comma-separated
    string, the space as given (``default`` when None) with its content hash
    (``space_sha256``) and the data as its fingerprint
    (``data`` = the resolved path or ``keras.datasets.mnist``, ``data_sha256``). The storage
    and tracking URI are recorded without their password (``***``): the study's attributes and
    the MLflow params can be read by anyone who reaches the dashboard or the MLflow UI."""
    from nas_mnist.tracking.redaction import redact_uri

    record: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        if field.name in _NOT_RECORDED:
            continue
        value = getattr(settings, field.name)
        record[field.name] = os.fspath(value) if isinstance(value, os.PathLike) else value
        if field.name in _URLS and isinstance(value, str):
            record[field.name] = redact_uri(value)
    record.update(
        pruner=settings.resolved_pruner, objective=",".join(settings.objectives),
        space=os.fspath(settings.space) if settings.space is not None else "default",
        space_sha256=space_sha256(settings.space), data=data.source, data_sha256=data.sha256,
    )
    return record


def remember_search(study: Any, settings: Any, data: DataFingerprint) -> dict[str, Any]:
    """Store the search's data fingerprint, space hash and settings in the study's user
    attributes (the latest search's, when a study is resumed with other settings).

    Returns:
        The settings record (``settings_record``).
    """
    record = settings_record(settings, data)
    study.set_user_attr(DATA_SOURCE_ATTR, data.source)
    if data.sha256 is not None:
        study.set_user_attr(DATA_SHA256_ATTR, data.sha256)
    study.set_user_attr(SPACE_SHA256_ATTR, record["space_sha256"])
    study.set_user_attr(SETTINGS_ATTR, record)
    return record


def record_parent_params(tracker: Any, run_id: str, record: dict[str, Any]) -> None:
    """Log the settings as params of the study's parent run.

    MLflow params cannot change once logged: on a resumed study, settings logged before keep
    their first value and a changed one (``trials`` raised to resume, ...) is set as the tag
    ``settings.<name>`` instead. None becomes "None".
    """
    logged = tracker.client.get_run(run_id).data.params
    values = {key: str(value) for key, value in record.items()}
    tracker.log_params(run_id, {k: v for k, v in values.items() if k not in logged})
    changed = {f"settings.{k}": v for k, v in values.items() if k in logged and logged[k] != v}
    if changed:
        tracker.set_tags(run_id, changed)


def study_data(study: Any, data: str | os.PathLike | None) -> str | os.PathLike | None:
    """The data source for a command on ``study``: ``data`` if given, else the study's own.

    Args:
        study: an ``optuna.Study`` made by ``nas-mnist search`` (older studies remember no
            data: ``None`` is returned, meaning ``NAS_MNIST_DATA`` or Keras' download).
        data: the command's ``--data``, or None.

    Returns:
        ``data``, the study's file, or None (Keras' download or an older study).

    Raises:
        InputError: the study's file no longer exists, or its SHA-256 changed since the search;
            the message names the file and says to pass ``--data``.
    """
    if data is not None:
        return data
    source = study.user_attrs.get(DATA_SOURCE_ATTR)
    if source is None or source == KERAS_SOURCE:
        return None
    expected = study.user_attrs.get(DATA_SHA256_ATTR)
    hint = ("pass --data PATH with the MNIST the search used (an .npz file or a folder of the "
            "four IDX files)")
    if not os.path.exists(source):
        raise InputError(f"study {study.study_name!r} was searched on {source}, which no longer "
                         f"exists; {hint}")
    found = data_fingerprint(source).sha256
    if expected is not None and found != expected:
        raise InputError(f"study {study.study_name!r} was searched on {source}, but that file "
                         f"changed since (SHA-256 {found[:12]}..., the search's was "
                         f"{expected[:12]}...); {hint}")
    logger.info("data: %s (the study's own, SHA-256 checked)", source)
    return source


def study_tracking_uri(study: Any, tracking_uri: str | None) -> str:
    """The MLflow tracking URI of a study's runs and models: ``tracking_uri`` if given, else the
    one the study logged to.

    The study records its URI without the password (``redact_uri``): a recorded URI with
    ``***`` is completed from ``$MLFLOW_TRACKING_URI`` when that is the same URI with its
    password; a recorded URI without a password is used as it is.

    Args:
        study: the ``optuna.Study``.
        tracking_uri: the command's ``--tracking-uri``, or None.

    Raises:
        InputError: the study records no URI and none was given, or it records one whose
            password was hidden and ``$MLFLOW_TRACKING_URI`` is not that URI; the line says to
            pass ``--tracking-uri`` (it shows no password).
    """
    from nas_mnist.tracking.redaction import is_redacted, redact_uri

    if tracking_uri:
        return tracking_uri
    recorded = study.user_attrs.get(TRACKING_URI_ATTR)
    if not recorded:
        raise InputError(f"study {study.study_name!r} records no MLflow tracking URI; pass "
                         "--tracking-uri")
    if not is_redacted(recorded):
        return recorded
    environment = os.environ.get("MLFLOW_TRACKING_URI")
    if environment and redact_uri(environment) == recorded:
        return environment
    raise InputError(f"study {study.study_name!r} logged to the MLflow store {recorded}, whose "
                     "password is not stored; pass --tracking-uri with the password (or set "
                     "MLFLOW_TRACKING_URI)")


def study_tracker(study: Any, tracking_uri: str | None) -> Any:
    """The ``Tracker`` of the MLflow store that holds a study's runs and models, checked.

    Args:
        study: the ``optuna.Study``.
        tracking_uri: the store to use instead of the one the study logged to, or None.

    Raises:
        InputError: no usable URI (``study_tracking_uri``), a SQLite store that does not exist,
            or a store that cannot be reached.
    """
    from nas_mnist.sqlite_files import require_existing_sqlite
    from nas_mnist.tracking.tracker import Tracker

    tracking_uri = study_tracking_uri(study, tracking_uri)
    require_existing_sqlite(tracking_uri, "MLflow tracking store", "--tracking-uri")
    tracker = Tracker(tracking_uri)
    tracker.check()
    return tracker
