"""The final recipe: how ``nas-mnist retrain`` trains a spec into a final model.

A final model is a spec retrained from scratch at full budget: its own choices (layers,
optimizer, learning_rate, batch size, label smoothing) plus, unless turned off,

- data augmentation: random translation 0.1, rotation 0.05 (of a turn, up to +-18 degrees) and
  zoom 0.1, the factors of ``scripts/train_best_spec.py`` (``docs/results.md``), unless the spec
  already has augmentation of its own;
- a cosine learning-rate schedule (``lr_schedule="cosine"``: from the spec's learning_rate to 0
  over all epochs, Loshchilov & Hutter 2017), unless the spec already has a schedule of its own;

and, as in the search, precise BN before every validation and the best epoch kept by
val_accuracy (``model.training.train_spec``). The training split is all 50,000 training images
(or ``max_train_samples`` of them); the 10,000 validation images select the best epoch and the
champion; the test split is evaluated once per final model, for reporting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nas_mnist.architecture.spec import ArchitectureSpec, Augmentation

DEFAULT_FINAL_EPOCHS = 30
"""``retrain``'s default epochs: twice the search's default 15. A final model trains with
augmentation, which needs more epochs than the search's plain training (the 20-epoch retrain of
``docs/results.md`` was still improving at its 19th epoch); the cosine schedule ends its
learning_rate at 0 on the last epoch. On a CPU, pass fewer (``--epochs``)."""

FINAL_AUGMENTATION = Augmentation(translation=0.1, rotation=0.05, zoom=0.1)
"""The recipe's augmentation factors (``scripts/train_best_spec.py``'s defaults)."""

FINAL_LR_SCHEDULE = "cosine"
"""The recipe's learning-rate schedule (``ArchitectureSpec.lr_schedule``)."""


@dataclass(frozen=True)
class FinalRecipe:
    """How every final model of one ``retrain`` call trains (checked by ``RetrainSettings``).

    Attributes:
        epochs: training epochs per final model, >= 1 (the best one is kept).
        augmentation: add ``FINAL_AUGMENTATION`` to specs that have none.
        cosine: use the cosine schedule for specs with the constant learning_rate.
        max_train_samples: train on a stratified subset of this many training images; None:
            all 50,000.
        batch_size: the search's ``--batch-size`` (it overrode every spec's batch size in the
            search, so the final spec takes it too); None: each spec's own.
        seed: base seed; the ``s``-th final model of a spec trains with ``seed + s``.
    """

    epochs: int = DEFAULT_FINAL_EPOCHS
    augmentation: bool = True
    cosine: bool = True
    max_train_samples: int | None = None
    batch_size: int | None = None
    seed: int = 0

    def apply(self, spec: ArchitectureSpec) -> ArchitectureSpec:
        """The final spec of ``spec``: its own choices plus the recipe's augmentation and
        schedule where the spec has none (and the search's batch size, if it had one)."""
        changes: dict[str, Any] = {}
        if self.augmentation and not spec.augmentation.enabled:
            changes["augmentation"] = FINAL_AUGMENTATION
        if self.cosine and spec.lr_schedule == "constant":
            changes["lr_schedule"] = FINAL_LR_SCHEDULE
        if self.batch_size is not None:
            changes["batch_size"] = self.batch_size
        return dataclasses.replace(spec, **changes) if changes else spec

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON values (what two ``retrain`` calls must agree on), with the
        augmentation factors and the schedule it adds."""
        return {**dataclasses.asdict(self),
                "augmentation_factors": FINAL_AUGMENTATION.to_dict() if self.augmentation else {},
                "lr_schedule": FINAL_LR_SCHEDULE if self.cosine else None}

    def record(self, num_train_images: int) -> dict[str, Any]:
        """What a final model stores as its recipe (``trial_attributes.RECIPE_ATTR``):
        ``to_dict`` plus the number of training images and the fixed parts of the recipe."""
        return {**self.to_dict(), "num_train_images": int(num_train_images),
                "precise_bn": True, "selection": "best epoch by val_accuracy"}

    def describe(self) -> str:
        """One line: epochs, augmentation, schedule, training images."""
        parts = [f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}",
                 f"augmentation {FINAL_AUGMENTATION}" if self.augmentation
                 else "no added augmentation",
                 "cosine learning rate" if self.cosine else "the spec's learning-rate schedule",
                 f"{self.max_train_samples:,} training images" if self.max_train_samples
                 else "all training images"]
        return ", ".join(parts)


def recipe_differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> dict[str, tuple]:
    """The recipe fields whose recorded value differs from the wanted one:
    ``{name: (recorded, wanted)}`` over ``wanted``'s keys (extra recorded keys are ignored)."""
    return {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
