"""The MLflow Model Registry: a study's registered model and its aliases.

A study's final models are published as versions of one registered model named after the study,
each version pointing at an MLflow model (``models:/<model_id>``) and pointed at by an alias:
``champion`` (the best final model) and ``ensemble`` (the mean-softmax ensemble of the final
models). Anyone with the tracking store then loads the current one without knowing a run or a
trial: ``mlflow.pyfunc.load_model("models:/<study name>@champion")``.

Each version carries an identity tag (``IDENTITY_TAG``: the champion's model URI, the ensemble's
members); a version is created, and the alias moved to it, only when the identity changed, so a
repeated ``retrain`` registers nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas_mnist.errors import RuntimeFailure
from nas_mnist.tracking.models import global_tracking_uri, model_id_of
from nas_mnist.tracking.redaction import redact_uri

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
"""Alias of the registered version that holds the champion."""
ENSEMBLE_ALIAS = "ensemble"
"""Alias of the registered version that holds the ensemble of the final models."""
IDENTITY_TAG = "nas_mnist.identity"
"""Model-version tag: what the version is (the champion's model URI, the ensemble's members)."""


class RegistryError(RuntimeFailure):
    """The Model Registry refused a registration; the message says which model and why."""

    hint = "Run the same command again to register what is missing (nothing is retrained)."


@dataclass(frozen=True)
class RegisteredVersion:
    """One alias of a registered model.

    Attributes:
        name: the registered model (the study's name).
        alias: ``champion`` or ``ensemble``.
        version: the version the alias points at (MLflow numbers them "1", "2", ...).
        source: the MLflow model it holds (``models:/<model_id>``).
        run_id: the MLflow run that logged that model.
        created: whether this call created the version (False: the alias already held it).
    """

    name: str
    alias: str
    version: str
    source: str
    run_id: str | None
    created: bool

    @property
    def uri(self) -> str:
        """``models:/<name>@<alias>``: what ``mlflow.pyfunc.load_model`` takes."""
        return f"models:/{self.name}@{self.alias}"


def aliased_version(tracker: Any, name: str, alias: str) -> Any | None:
    """The ``ModelVersion`` that ``alias`` of registered model ``name`` points at, or None when
    the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return tracker.client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:  # RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE
        logger.debug("no %s@%s: %s", name, alias, exc)
        return None


def current_registration(tracker: Any, name: str, alias: str,
                         identity: str) -> RegisteredVersion | None:
    """``alias``'s version if it already holds ``identity`` (nothing to register), else None."""
    version = aliased_version(tracker, name, alias)
    if version is None or (version.tags or {}).get(IDENTITY_TAG) != identity:
        return None
    return RegisteredVersion(name, alias, str(version.version), version.source, version.run_id,
                             created=False)


def register_alias(tracker: Any, name: str, alias: str, model_uri: str, run_id: str | None,
                   identity: str, tags: Mapping[str, str] | None = None) -> RegisteredVersion:
    """Make ``models:/<name>@<alias>`` hold ``model_uri``: a new version of registered model
    ``name`` (created if missing) with the alias moved to it, unless the alias already holds a
    version of the same ``identity``.

    Args:
        tracker: the ``Tracker`` of the store (its registry is the tracking store's).
        name: the registered model's name (the study's name).
        alias: ``CHAMPION_ALIAS`` or ``ENSEMBLE_ALIAS``.
        model_uri: the logged MLflow model (``models:/<model_id>``).
        run_id: the run that logged it.
        identity: what the version is; equal identities are one version.
        tags: more version tags (strings).

    Returns:
        The ``RegisteredVersion`` the alias points at now.

    Raises:
        RegistryError: the registry refused (e.g. a store without a Model Registry).
        TrackingUnavailableError: the tracking server stopped answering.
    """
    current = current_registration(tracker, name, alias, identity)
    if current is not None:
        return current
    from mlflow.exceptions import MlflowException

    try:
        _ensure_registered_model(tracker, name)
        # MLflow resolves a models:/<model_id> source against its global tracking URI.
        with global_tracking_uri(tracker.tracking_uri):
            version = tracker.client.create_model_version(
                name, source=model_uri, run_id=run_id, model_id=model_id_of(model_uri),
                tags={IDENTITY_TAG: identity, **dict(tags or {})})
        tracker.client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RegistryError(f"could not register {model_uri} as {name}@{alias} in "
                            f"{redact_uri(tracker.tracking_uri)}: {first}") from None
    logger.info("registered %s as models:/%s@%s (version %s)", model_uri, name, alias,
                version.version)
    return RegisteredVersion(name, alias, str(version.version), model_uri, run_id, created=True)


def _ensure_registered_model(tracker: Any, name: str) -> None:
    """Create registered model ``name`` unless it exists (another process may create it)."""
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.get_registered_model(name)
        return
    except MlflowException:
        pass
    try:
        tracker.client.create_registered_model(
            name, description=f"nas-mnist study {name!r}: its champion and ensemble")
    except MlflowException:
        tracker.client.get_registered_model(name)  # created meanwhile, else raise
