"""Tests for nas_mnist.timing and the ETA shown by nas_mnist.console.RichProgress."""

from __future__ import annotations

import pytest

from nas_mnist.console import RichProgress
from nas_mnist.timing import (
    CPU_PROJECTION_LIMIT_SECONDS,
    FIT_LOOP_FACTOR,
    FIXED_IMAGES_PER_EPOCH,
    TRIAL_OVERHEAD_SECONDS,
    CostModel,
    SearchClock,
    SearchProjection,
    StageWork,
    format_duration,
    suggest_cpu_budget,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (44.2, "45 s"), (60, "1 min"), (61, "2 min"), (3599, "1 h 00 min"),
    (3600, "1 h 00 min"), (5 * 3600 + 7 * 60, "5 h 07 min"), (-3, "0 s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_trial_eta_needs_one_epoch_then_counts_down_between_epochs():
    now = FakeClock()
    clock = SearchClock(now)
    assert clock.trial_remaining() is None and clock.search_remaining(5) is None
    clock.trial_started(epochs=3)
    now.t += 100
    assert clock.trial_remaining() is None  # no epoch finished yet
    now.t += 200  # a 300-second epoch
    clock.epoch_ended()
    assert clock.trial_remaining() == pytest.approx(600)  # two epochs of 300 s left
    now.t += 250  # minutes into the second epoch, the ETA keeps moving
    assert clock.trial_remaining() == pytest.approx(350)
    now.t += 400  # the second epoch runs very late: the ETA bottoms out at 0, never negative
    assert clock.trial_remaining() == 0
    clock.epoch_ended()  # epochs of 300 s and 650 s: mean 475, one left
    assert clock.trial_remaining() == pytest.approx(475)


def test_search_projection_uses_the_running_trial_then_the_mean_of_finished_trials():
    now = FakeClock()
    clock = SearchClock(now)
    clock.trial_started(epochs=2)
    now.t += 60
    clock.epoch_ended()
    # No trial finished: the running one's projected 120 s stands in for the mean.
    assert clock.search_remaining(trials_not_started=4) == pytest.approx(60 + 4 * 120)
    now.t += 60
    clock.trial_ended()
    clock.trial_started(epochs=2)
    now.t += 10  # a pruned trial: short, and it counts
    clock.trial_ended(counted=True)
    clock.trial_started(epochs=2)
    now.t += 5  # an invalid architecture: does not count
    clock.trial_ended(counted=False)
    assert clock.trial_seconds == [120, 10]
    assert clock.search_remaining(trials_not_started=3) == pytest.approx(3 * 65)


def test_suggestion_only_on_a_cpu_above_two_hours_and_when_smaller_is_possible():
    hours = 3600.0
    assert CPU_PROJECTION_LIMIT_SECONDS == 2 * hours
    line = suggest_cpu_budget(5 * hours, epochs=20, max_train_samples=None, on_gpu=False)
    scale = 3 * (10_000 + FIXED_IMAGES_PER_EPOCH) / (20 * (50_000 + FIXED_IMAGES_PER_EPOCH))
    assert line == (
        "This search projects to 5 h 00 min on a CPU; a CPU-sized budget is --epochs 3 "
        f"--max-train-samples 10000 (about {format_duration(5 * hours * scale)})."
    )
    assert "\n" not in line
    assert suggest_cpu_budget(5 * hours, epochs=20, max_train_samples=None, on_gpu=True) is None
    assert suggest_cpu_budget(1.9 * hours, epochs=20, max_train_samples=None, on_gpu=False) is None
    assert suggest_cpu_budget(None, epochs=20, max_train_samples=None, on_gpu=False) is None
    # Already CPU-sized: nothing smaller to suggest.
    assert suggest_cpu_budget(9 * hours, epochs=3, max_train_samples=10_000, on_gpu=False) is None
    partial = suggest_cpu_budget(3 * hours, epochs=2, max_train_samples=40_000, on_gpu=False)
    assert "--epochs 2 --max-train-samples 10000" in partial


def test_rich_progress_shows_etas_after_the_first_epoch_and_the_hint_once():
    now = FakeClock()
    hints: list[float | None] = []

    def hint(projected):
        hints.append(projected)
        return "use a smaller budget" if projected and projected > 1000 else None

    progress = RichProgress(10, done_trials=2, disable=True, budget_hint=hint,
                            clock=SearchClock(now))
    progress.trial_started(2, epochs=4, label="trial 2")
    assert progress.eta_text(progress.epochs) == "" and progress.eta_text(progress.trials) == ""
    now.t += 90
    progress.epoch_ended(2, 0, {"val_accuracy": 0.9})
    assert progress.eta_text(progress.epochs) == "ETA 5 min"  # 3 epochs of 90 s
    # 270 s for this trial, then 7 more trials of 360 s.
    assert progress.search_remaining() == pytest.approx(270 + 7 * 360)
    assert progress.eta_text(progress.trials) == f"~{format_duration(270 + 7 * 360)} left"
    assert progress.suggestion == "use a smaller budget"
    now.t += 90
    progress.epoch_ended(2, 1, {"val_accuracy": 0.91})
    assert len(hints) == 1  # shown once
    progress.trial_ended(2, "pruned", 0.91)  # pruned after 2 of 4 epochs: 180 s, and it counts
    assert progress.eta_text(progress.epochs) == ""
    assert progress.search_remaining() == pytest.approx(7 * 180)


def test_a_cost_model_is_the_line_through_measured_specs():
    # 0.1 ms per training image plus 10 ms per GFLOP; evaluation a third of the slope.
    points = [(flops, 1e-4 + 1e-2 * flops / 1e9, 2e-5 + 3e-3 * flops / 1e9)
              for flops in (1e6, 2e7, 1e8)]
    model = CostModel.fit(points, "test")
    assert model.train_fixed == pytest.approx(1e-4) and model.train_per_gflop == pytest.approx(1e-2)
    assert model.eval_seconds(5e7) == pytest.approx(2e-5 + 3e-3 * 0.05)
    one = CostModel.fit([(1e7, 2e-4, 1e-4)], "one spec")  # proportional to FLOPs
    assert one.train_fixed == 0 and one.train_seconds(2e7) == pytest.approx(4e-4)
    # A falling or negative line is not kept: slope and intercept stay >= 0.
    odd = CostModel.fit([(1e6, 5e-4, 1e-4), (1e8, 4e-4, 1e-4)], "odd")
    assert odd.train_per_gflop == 0 and odd.train_fixed == pytest.approx(4.5e-4)
    with pytest.raises(ValueError):
        CostModel.fit([], "none")


def test_a_stage_costs_its_epochs_images_and_test_evaluation_per_trial():
    model = CostModel(train_fixed=1e-3, train_per_gflop=0, eval_fixed=1e-4, eval_per_gflop=0,
                      source="flat")
    stage = StageWork("seed", (1e7, 2e7), epochs=3, train_images=10_000, eval_images=12_000,
                      test_images=10_000)
    per_trial = (FIT_LOOP_FACTOR * (3 * (10_000 * 1e-3 + 12_000 * 1e-4) + 10_000 * 1e-4)
                 + TRIAL_OVERHEAD_SECONDS)
    assert stage.seconds(model) == pytest.approx(2 * per_trial)
    projection = SearchProjection(
        (stage, StageWork("sampled trial", (1e7,) * 4, 3, 10_000, 12_000, 10_000,
                          note="less when pruned")), model, "CPU", measured_seconds=3.2)
    assert projection.total_seconds == pytest.approx(6 * per_trial)
    line = projection.describe()
    assert "\n" not in line
    assert line.startswith("projected on the CPU before the first trial (flat, in 3 s): ")
    assert (f"2 seeds ~{format_duration(2 * per_trial)}, 4 sampled trials "
            f"~{format_duration(4 * per_trial)} (less when pruned); in all "
            f"~{format_duration(6 * per_trial)}, one trial at a time") in line


def test_the_suggestion_takes_the_projected_cpu_sized_time_when_given():
    line = suggest_cpu_budget(5 * 3600.0, epochs=15, max_train_samples=None, on_gpu=False,
                              cpu_sized_seconds=1800.0)
    assert line.endswith("--epochs 3 --max-train-samples 10000 (about 30 min).")
