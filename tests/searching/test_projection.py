"""The projection before the first trial: queued specs, sampled stand-ins, the cost model, the
CPU-sized advice (in-memory studies, random images; the device is measured once on tiny specs)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from support import SMALL_SPACE, random_splits

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.model.cost import forward_flops
from nas_mnist.search_space.space import load_search_space, search_space_from_dict
from nas_mnist.searching import projection
from nas_mnist.searching.prepare import Prepared
from nas_mnist.searching.settings import SearchSettings
from nas_mnist.timing import CPU_COST_MODEL
from nas_mnist.trial_attributes import BASELINE_ATTR, RETRY_OF_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)


def prepared(space, n: int = 300) -> Prepared:
    return Prepared(space, random_splits(n), tracker=None, devices="CPU")


def test_queued_seeds_and_retries_have_their_own_flops_and_the_rest_are_sampled():
    space = load_search_space()
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.9))
    for name in ("s002_m1", "s002_m9"):
        study.enqueue_trial(space.params_for_spec(get_baseline(name).spec),
                            user_attrs={BASELINE_ATTR: name})
    retried = space.params_for_spec(get_baseline("s000_m1").spec)  # a sampled trial's retry
    study.enqueue_trial(retried, user_attrs={RETRY_OF_ATTR: 0})
    work = projection.queued_work(SearchSettings(trials=10), space, study)
    assert work.seeds == tuple(forward_flops(get_baseline(n).spec) for n in ("s002_m1", "s002_m9"))
    # 10 trials: 1 finished, 3 queued, so 6 sampled, each the mean of the drawn specs.
    assert len(work.sampled) == 7 and work.sampled[0] == forward_flops(get_baseline("s000_m1").spec)
    assert len(set(work.sampled[1:])) == 1 and work.sampled[1] > 0
    too_small = projection.queued_work(SearchSettings(trials=10, max_params=1000), space, study)
    assert too_small.seeds == (0.0, 0.0)  # pruned before training: no images


def test_a_small_search_is_projected_without_measuring_and_gets_no_advice():
    space = search_space_from_dict(SMALL_SPACE, "small")
    study = optuna.create_study(direction="maximize")
    settings = SearchSettings(trials=3, epochs=1, max_train_samples=250)
    result, advice = projection.project_search(settings, prepared(space), study)
    assert result.cost is CPU_COST_MODEL and result.measured_seconds == 0
    assert advice is None
    line = result.describe()
    assert "before the first trial" in line and "3 sampled trials ~" in line


def test_a_large_search_measures_the_device_and_advises_a_cpu_sized_budget(monkeypatch):
    space = search_space_from_dict(SMALL_SPACE, "small")
    study = optuna.create_study(direction="maximize")
    measured = []

    def measure(specs, data):  # the device as slow as this project's CPU, 100 times over
        measured.append(len(specs))
        return type(CPU_COST_MODEL)(*(100 * v for v in (
            CPU_COST_MODEL.train_fixed, CPU_COST_MODEL.train_per_gflop,
            CPU_COST_MODEL.eval_fixed, CPU_COST_MODEL.eval_per_gflop)), source="measured")

    monkeypatch.setattr(projection, "measure_cost_model", measure)
    settings = SearchSettings(trials=100, epochs=15)
    result, advice = projection.project_search(settings, prepared(space), study, final_models=3,
                                               final_epochs=20)
    assert measured and result.cost.source == "measured"
    assert [s.name for s in result.stages] == ["sampled trial", "final model"]
    assert "3 final models ~" in result.describe() and result.stages[1].epochs == 20
    assert result.stages[1].train_images == 50_000  # every training image
    assert "a CPU-sized budget is --epochs 3 --max-train-samples 10000" in advice


def test_measuring_the_device_fits_a_cost_model_to_two_specs():
    space = search_space_from_dict(SMALL_SPACE, "small")
    specs = [s for s in projection.sampled_specs(space, count=8) if s is not None]
    model = projection.measure_cost_model(specs, random_splits(300))
    assert model.source.startswith("measured on specs of")
    assert model.train_seconds(1e7) > 0 and model.eval_seconds(1e7) > 0


def test_one_spec_given_twice_is_measured_once(monkeypatch):
    from nas_mnist.model import cost

    measured = []
    real = cost.measure_step_cost
    monkeypatch.setattr(cost, "measure_step_cost",
                        lambda spec, *a, **k: measured.append(spec) or real(spec, *a, **k))
    spec = get_baseline("s004_linear").spec
    model = projection.measure_cost_model([spec, spec], random_splits(300))  # --seeds 2
    assert measured == [spec]
    assert model.source.startswith("measured on a spec of")


def test_final_models_are_projected_one_by_one_on_their_own_training_images(monkeypatch):
    small, large = get_baseline("s004_linear").spec, get_baseline("s000_m1").spec
    data = random_splits(300)
    line = projection.final_models_line([("a/seed:0", small), ("b/seed:0", large)], 1, data)
    assert line.startswith("final models projected on the CPU (FLOPs at this project's")
    each = dict(part.split(" ~") for part in line.split(": ", 1)[1].split("; ")[0].split(", "))
    assert set(each) == {"a/seed:0", "b/seed:0"} and "; in all ~" in line

    def measure(specs, data):  # stands in for the device's timing
        return CPU_COST_MODEL.__class__(*(10 * v for v in (
            CPU_COST_MODEL.train_fixed, CPU_COST_MODEL.train_per_gflop,
            CPU_COST_MODEL.eval_fixed, CPU_COST_MODEL.eval_per_gflop)), source="measured")

    monkeypatch.setattr(projection, "measure_cost_model", measure)
    # 30 epochs of s000_m1 on 50,000 images project past CALIBRATE_ABOVE_SECONDS: measured.
    full = random_splits(60_000, test=10, validation=10_000)
    assert full.num_train == 50_000
    line = projection.final_models_line([("b/seed:0", large)], 30, full)
    assert "(measured, in " in line


def test_a_failing_projection_never_stops_the_search(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no")

    monkeypatch.setattr(projection, "project_search", broken)
    assert projection.log_projection(SearchSettings(), None, None) == (None, None)


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_stand_ins_are_reproducible(seed):
    space = search_space_from_dict(SMALL_SPACE, "small")
    assert projection.sampled_specs(space, 5, seed) == projection.sampled_specs(space, 5, seed)
