"""The settings of one ``retrain`` call, as one frozen object, and every check of its values.

``RetrainSettings`` is what ``nas_mnist.retrain(...)`` builds from its arguments and what
``nas-mnist retrain`` builds from its flags: field names are the flags' names with underscores,
defaults are the flags' defaults, and every bad value raises ``InputError`` naming the flag, so
the API and the CLI refuse the same input with the same words, before anything is created.
Importing this module imports neither Optuna nor TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from nas_mnist.errors import InputError
from nas_mnist.searching.final.recipe import DEFAULT_FINAL_EPOCHS, FinalRecipe
from nas_mnist.searching.validation import validate_seed, validate_study_name
from nas_mnist.study.defaults import DEFAULT_STORAGE, DEFAULT_STUDY_NAME

DEFAULT_TOP_K = 3
"""Distinct specs of the study retrained by default (``--top-k``)."""


def parse_final_baselines(value: str | Sequence[str] | None) -> tuple[bool, tuple[str, ...]]:
    """``--baselines`` of ``retrain`` -> (retrain the study's best baseline trial, more names).

    None or "auto": the best baseline trial of the study (by its search val_accuracy); "none":
    no baseline; "NAME,NAME" (or a sequence of names): the best one plus these catalog
    baselines.

    Raises:
        InputError: an unknown name (the message lists the catalog), an empty list, or
            "auto"/"none" mixed with names.
    """
    if value is None:
        return True, ()
    text = value if isinstance(value, str) else ",".join(value)
    keyword = text.strip().lower()
    if keyword in ("auto", "none"):
        return keyword == "auto", ()
    from nas_mnist.architecture.baselines import select_baselines

    try:
        chosen = select_baselines(text)
    except ValueError as exc:
        raise InputError(f"--baselines: {exc}") from None
    if not chosen:
        raise InputError("--baselines: name baselines, or pass auto or none")
    return True, tuple(b.name for b in chosen)


def _check_int(flag: str, value: object, minimum: int) -> None:
    """``value`` is an int (not a bool) >= ``minimum``, else ``InputError`` naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{flag}: expected an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{flag}: expected a positive integer (>= {minimum}), got {value}")


@dataclass(frozen=True)
class RetrainSettings:
    """Everything a ``retrain`` call needs to know; checked when made.

    Attributes:
        storage: Optuna storage URL of the study (its final study ``<study>/final`` goes there).
        study_name: the searched study; it must exist and hold a complete trial.
        top_k: distinct specs (equal spec dicts count once) retrained, best search val_accuracy
            first.
        epochs: training epochs per final model (``recipe.DEFAULT_FINAL_EPOCHS``).
        seeds: final models per spec, each with its own training seed (mean and spread are
            reported).
        baselines: None or "auto" (the study's best baseline trial), "none", or "NAME,NAME"
            (the best one plus these catalog baselines).
        data: MNIST as for ``search``; None: the study's own file (``study.memory.study_data``).
        max_train_samples: train on a stratified subset of this many training images; None:
            all 50,000.
        jobs: final models trained at once; only 1 (one process) is supported.
        augmentation: add the recipe's augmentation (``recipe``) to specs without one.
        cosine: use the cosine learning-rate schedule for specs with a constant learning_rate.
        tracking_uri: MLflow store; None: the one the study logged to.
        progress: draw progress bars.
        seed: base training seed (a spec's ``s``-th final model trains with ``seed + s``) and
            the seed of the training subset.

    Raises:
        InputError: a value out of range or of the wrong type; the message names the flag.
    """

    storage: str = DEFAULT_STORAGE
    study_name: str = DEFAULT_STUDY_NAME
    top_k: int = DEFAULT_TOP_K
    epochs: int = DEFAULT_FINAL_EPOCHS
    seeds: int = 1
    baselines: str | Sequence[str] | None = None
    data: str | os.PathLike | None = None
    max_train_samples: int | None = None
    jobs: int = 1
    augmentation: bool = True
    cosine: bool = True
    tracking_uri: str | None = None
    progress: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for flag, value in (("--top-k", self.top_k), ("--epochs", self.epochs),
                            ("--seeds", self.seeds), ("--jobs", self.jobs)):
            _check_int(flag, value, 1)
        if self.max_train_samples is not None:
            _check_int("--max-train-samples", self.max_train_samples, 1)
        _check_int("--seed", self.seed, 0)
        validate_seed(self.seed)
        validate_study_name(self.study_name)
        if not isinstance(self.storage, str) or not self.storage:
            raise InputError(f"--storage: expected a storage URL, got {self.storage!r}")
        if self.jobs > 1:
            raise InputError(
                f"--jobs {self.jobs}: retrain trains one final model at a time in this process "
                "(the --jobs worker processes run search trials only); on a PostgreSQL storage, "
                "run the same command in several terminals or machines: they share the queue "
                "of final models")
        parse_final_baselines(self.baselines)

    def recipe(self, batch_size: int | None = None) -> FinalRecipe:
        """The ``FinalRecipe`` of these settings; ``batch_size``: the search's ``--batch-size``
        (from the study's recorded settings), if it had one."""
        return FinalRecipe(epochs=self.epochs, augmentation=self.augmentation,
                           cosine=self.cosine, max_train_samples=self.max_train_samples,
                           batch_size=batch_size, seed=self.seed)
