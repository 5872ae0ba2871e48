"""Tests for nas_mnist.searching.baseline_trials: which baselines a search seeds, in which order, within the
trial budget. In-memory studies and a stand-in objective: nothing trains."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nas_mnist.architecture.baselines import BASELINES, get_baseline
from nas_mnist.architecture.spec import SpecError
from nas_mnist.model.cost import forward_flops
from nas_mnist.search_space.space import load_search_space
from nas_mnist.searching.baseline_trials import (
    AUTO_SHARE,
    BASELINE_ATTR,
    EQUIVALENT_ACCURACY,
    IN_SPACE_ATTR,
    seed_baselines,
    seeding_order,
    seeding_plan,
    spec_for_trial,
)
from nas_mnist.searching.budget import run_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def space():
    return load_search_space()


def in_space_order(space) -> list[str]:
    return [b.name for b in seeding_order() if space.params_for_spec(b.spec) is not None]


def new_study() -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))


def search(study: optuna.Study, space, n_trials: int) -> None:
    """What ``nas-mnist search`` does after seeding, with a stand-in for training."""

    def objective(trial: optuna.Trial) -> float:
        try:
            spec = spec_for_trial(trial, space)
        except SpecError:
            raise optuna.TrialPruned() from None
        return 1.0 / spec.num_params

    run_trials(study, objective, n_trials)


def baseline_names(study: optuna.Study) -> list[str]:
    return [t.user_attrs[BASELINE_ATTR] for t in study.trials if BASELINE_ATTR in t.user_attrs]


def test_seeding_order_is_tiers_of_equal_reported_accuracy_cheapest_first():
    order = seeding_order()
    assert sorted(b.name for b in order) == sorted(b.name for b in BASELINES)
    names = [b.name for b in order]
    # The first tier: every baseline within 0.2 points of the best reported (s002_m9, 0.9954),
    # fewest forward FLOPs first.
    tier = [b for b in BASELINES if b.reported_test_accuracy >= 0.9954 - EQUIVALENT_ACCURACY]
    assert names[:len(tier)] == [b.name for b in sorted(tier, key=lambda b: forward_flops(b.spec))]
    assert names[:3] == ["s002_m1", "s002_m5", "s001_m1"]  # 8.7, 13.6, 14.4 MFLOPs
    # A stronger tier always goes before a weaker one, whatever the cost: s003_m1 (0.9863,
    # 5.9 MFLOPs) is cheaper than both but comes after them.
    picked = [get_baseline(n) for n in ("s003_m1", "s002_m9", "s002_m1")]
    assert [b.name for b in seeding_order(picked)] == ["s002_m1", "s002_m9", "s003_m1"]


def test_auto_seeds_at_most_half_of_the_trials_and_the_sampler_the_rest(space):
    study = new_study()
    # The cheapest of the strongest tier (a documented change: strongest-first seeded s002_m9 and
    # s002_m8, 104 and 117 MFLOPs; these are 8.7 and 13.6).
    assert seed_baselines(study, space, seeding_plan("auto"), n_trials=4) == ["s002_m1", "s002_m5"]
    assert [t.state for t in study.trials] == [TrialState.WAITING] * 2
    assert all(t.user_attrs[IN_SPACE_ATTR] for t in study.trials)
    search(study, space, 4)
    assert len(study.trials) == 4
    assert baseline_names(study) == ["s002_m1", "s002_m5"]
    sampled = [t for t in study.trials if BASELINE_ATTR not in t.user_attrs]
    assert len(sampled) == 2 and all(t.params for t in sampled)
    # Baselines carry their params: the sampler learns from them.
    assert study.trials[0].params == space.params_for_spec(get_baseline("s002_m1").spec)


def test_a_larger_budget_adds_the_next_baselines_once(space):
    study = new_study()
    seed_baselines(study, space, seeding_plan("auto"), n_trials=4)
    search(study, space, 4)
    # --trials 10: half is 5 baselines, 2 are there, so the next 3 in order.
    added = seed_baselines(study, space, seeding_plan("auto"), n_trials=10)
    assert added == in_space_order(space)[2:5]
    assert seed_baselines(study, space, seeding_plan("auto"), n_trials=10) == []  # idempotent
    search(study, space, 10)
    assert len(study.trials) == 10
    assert baseline_names(study) == in_space_order(space)[:5]
    assert len(set(baseline_names(study))) == 5


def test_auto_seeds_every_in_space_baseline_when_half_the_budget_holds_them(space):
    study = new_study()
    seeded = seed_baselines(study, space, seeding_plan("auto"), n_trials=100)
    assert seeded == in_space_order(space)
    assert len(seeded) == 20  # not s002_m10 nor the dense-only models: the sampler learns nothing
    assert int(AUTO_SHARE * 100) >= len(seeded)


def test_auto_with_one_trial_or_a_space_without_baselines_seeds_nothing(space):
    assert seed_baselines(new_study(), space, seeding_plan("auto"), n_trials=1) == []
    small = load_search_space("small_cnn")
    assert seed_baselines(new_study(), small, seeding_plan("auto"), n_trials=100) == []


@pytest.mark.parametrize(("selection", "n_trials", "expected"), [
    ("all", 3, [b.name for b in seeding_order()[:3]]),
    ("all", 30, [b.name for b in seeding_order()]),
    ("s004_linear,s001_m2,s003_m1", 2, ["s004_linear", "s001_m2"]),
    ("s004_linear,s001_m2,s003_m1", 3, ["s004_linear", "s001_m2", "s003_m1"]),
    ("none", 10, []),
])
def test_all_none_and_names_keep_their_meaning_within_the_budget(space, selection, n_trials,
                                                                 expected):
    study = new_study()
    assert seed_baselines(study, space, seeding_plan(selection), n_trials=n_trials) == expected
    assert len(study.trials) <= n_trials
    outside = {t.user_attrs[BASELINE_ATTR] for t in study.trials
               if not t.user_attrs[IN_SPACE_ATTR]}
    assert outside == set(expected) & {"s002_m10", "s004_linear", "s004_mlp", "s004_mlp_dropout"}


def test_trials_already_in_the_study_take_room_failed_ones_do_not(space):
    study = new_study()
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL):
        trial = study.ask()
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    study.enqueue_trial({}, user_attrs={"retry_of": 0})  # a queued retry is pending work
    # --trials 5: 3 held (complete, pruned, waiting), so 2 fit; the failed ones are replaced.
    plan = seeding_plan("s003_m1,s001_m2,s000_m1")
    assert seed_baselines(study, space, plan, n_trials=5) == ["s003_m1", "s001_m2"]
    assert seed_baselines(study, space, plan, n_trials=5) == []


def test_a_full_study_gets_no_baseline(space):
    study = new_study()
    search(study, space, 3)
    assert seed_baselines(study, space, seeding_plan("all"), n_trials=3) == []
    assert len(study.trials) == 3


def test_without_a_budget_every_given_baseline_is_seeded_once(space):
    study = new_study()
    chosen = [get_baseline("s003_m1"), get_baseline("s004_linear")]
    assert seed_baselines(study, space, chosen) == ["s003_m1", "s004_linear"]
    assert seed_baselines(study, space, chosen) == []
    assert seed_baselines(study, space, list(BASELINES)) == [
        b.name for b in BASELINES if b.name not in ("s003_m1", "s004_linear")]


@pytest.mark.parametrize(("selection", "match"), [
    ("auto,s000_m1", "mixes 'auto' with names"),
    ("s999_m1", "unknown baseline 's999_m1'"),
    (" , ", "empty baseline selection"),
])
def test_bad_selections_raise_value_error(selection, match):
    with pytest.raises(ValueError, match=match):
        seeding_plan(selection)


def test_selection_keywords_are_case_insensitive():
    assert seeding_plan("AUTO").max_share == AUTO_SHARE and seeding_plan("AUTO").in_space_only
    assert seeding_plan("All").baselines == seeding_order()
    assert seeding_plan("None").baselines == ()


def test_seeded_baselines_rebuild_their_specs_through_a_sqlite_storage(space, tmp_path):
    # What a search does: seed, then a (new) process loads the study and runs each trial.
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=storage, study_name="seeded", direction="maximize")
    # Between them: float learning rates (1e-3, 1.0) and dropouts (0.25, 0.35, 0.5, 0.7),
    # initializers with arguments, Adam's TensorFlow 1 variant, 7 blocks, a stride-2 conv.
    names = "s004_cnn,s001_m1,s000_m3,s003_m4,s001_m2"
    seeded = seed_baselines(study, space, seeding_plan(names), n_trials=5)
    assert seeded == names.split(",")
    study = optuna.load_study(study_name="seeded", storage=storage)
    for name in seeded:
        trial = study.ask()
        assert trial.user_attrs[BASELINE_ATTR] == name
        assert spec_for_trial(trial, space) == get_baseline(name).spec  # raises if params drift
        assert space.suggest(trial) == get_baseline(name).spec
        study.tell(trial, 0.5)
    assert len(study.trials) == 5


def test_a_baseline_outside_the_space_records_the_searched_params_that_apply_to_it(space):
    """small_cnn holds no seed's architecture, but its optimizers and learning rates: an
    out-of-space baseline gets those of its params that lie in the space, no others."""
    small = load_search_space("small_cnn")
    study = new_study()
    seed_baselines(study, small, seeding_plan("s002_m1,s004_linear"))
    search(study, small, 2)
    for trial in study.trials:
        baseline = get_baseline(trial.user_attrs[BASELINE_ATTR])
        assert not trial.user_attrs[IN_SPACE_ATTR] and trial.state == TrialState.COMPLETE
        honest = small.shared_params_for_spec(baseline.spec)
        assert trial.params == honest and trial.params  # recorded by Optuna, same values
        assert trial.params["optimizer"] == baseline.spec.optimizer.name
        for name, distribution in trial.distributions.items():  # each value is in the space
            assert distribution._contains(distribution.to_internal_repr(trial.params[name]))
    adadelta, sgd = (t.params for t in study.trials)
    assert adadelta == {"optimizer": "adadelta", "learning_rate_adadelta": 1.0, "batch_size": 128}
    assert sgd == {"optimizer": "sgd", "batch_size": 100}  # its rate 0.5 is above the range
    # A value outside the space is left out: a learning rate above small_cnn's range.
    import dataclasses

    spec = get_baseline("s002_m1").spec
    fast = dataclasses.replace(spec, optimizer=dataclasses.replace(spec.optimizer,
                                                                   learning_rate=50.0))
    assert f"learning_rate_{spec.optimizer.name}" not in small.shared_params_for_spec(fast)
    assert "optimizer" in small.shared_params_for_spec(fast)


def test_a_baseline_whose_optimizer_the_space_lacks_gets_no_params(tmp_path):
    import yaml
    from support import SMALL_SPACE  # adam only

    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    small = load_search_space(tmp_path / "small.yaml")
    assert small.shared_params_for_spec(get_baseline("s004_linear").spec) == {}  # sgd
    study = new_study()
    seed_baselines(study, small, seeding_plan("s004_linear"))
    search(study, small, 1)
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].params == {}
