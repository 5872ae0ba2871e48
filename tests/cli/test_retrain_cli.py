"""``nas-mnist retrain``'s bad input: exit 2, one line, nothing created (no training here)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas_mnist.architecture.baselines import get_baseline
from nas_mnist.cli.main import main
from nas_mnist.trial_attributes import SPEC_ATTR


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """A SQLite storage in the current folder with study ``demo`` (one failed trial) and study
    ``done`` (one complete trial)."""
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = "sqlite:///s.db"
    demo = optuna.create_study(storage=url, study_name="demo", direction="maximize")
    demo.add_trial(create_trial(state=TrialState.FAIL))
    done = optuna.create_study(storage=url, study_name="done", direction="maximize")
    done.add_trial(create_trial(value=0.9, user_attrs={
        SPEC_ATTR: get_baseline("s001_m2").spec.to_dict()}))
    return url


@pytest.mark.parametrize(("flags", "message"), [
    (["--study-name", "done", "--top-k", "0"], "--top-k: expected a positive integer"),
    (["--study-name", "done", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["--study-name", "done", "--jobs", "2"], "--jobs 2: retrain trains one final model"),
    (["--study-name", "done", "--baselines", "s999_m1"], "unknown baseline 's999_m1'"),
    (["--study-name", "demo"], "study 'demo' has no complete trial to retrain"),
    (["--study-name", "nope"], "no study named 'nope'"),
])
def test_bad_input_exits_2_with_one_line_and_creates_nothing(storage, capsys, flags, message):
    before = set(Path(".").iterdir())
    assert main(["retrain", "--storage", storage, "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nas-mnist retrain: error: ")
    assert message in err[0]
    assert set(Path(".").iterdir()) == before  # no MLflow store, no lock file
    assert sorted(optuna.get_all_study_names(storage)) == ["demo", "done"]  # no final study


def test_a_storage_file_that_does_not_exist_is_not_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["retrain", "--storage", "sqlite:///missing.db", "--study-name", "demo"]) == 2
    assert "missing.db" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_flags(capsys):
    assert main(["retrain", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--top-k", "--epochs", "--seeds", "--baselines", "--max-train-samples",
                 "--jobs", "--no-augmentation", "--no-cosine", "--tracking-uri"):
        assert flag in out
