"""What a search shows as it goes and at its end: one line per finished trial where no progress
bar is drawn, a short ``SearchResult`` repr, and a search whose trials all stopped before
training said so (exit status 1)."""

from __future__ import annotations

import datetime
import logging
from functools import partial

import optuna
from optuna.trial import TrialState
from support import search_args

from nas_mnist.console import RichProgress, trial_line
from nas_mnist.model.training import NanLossError
from nas_mnist.searching.objective import _pruning_rule
from nas_mnist.searching.result import SearchResult
from nas_mnist.searching.runner import _trial_finished
from nas_mnist.searching.settings import SearchSettings
from nas_mnist.study.leaderboard import best_trial, leaderboard

optuna.logging.set_verbosity(optuna.logging.WARNING)
START = datetime.datetime(2024, 1, 1, 12, 0, 0)


def _trial(number: int, state: TrialState, value: float | None = None, seconds: float = 41,
           **attrs) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(state=state, value=value, user_attrs=attrs)
    trial.number = number
    trial.datetime_start, trial.datetime_complete = START, START + datetime.timedelta(
        seconds=seconds)
    return trial


def test_trial_lines_give_value_label_time_best_and_count():
    done = _trial(12, TrialState.COMPLETE, 0.98761, baseline="s002_m1")
    assert trial_line(done, 12, 60, (0.9901, 7)) == (
        "trial 12 complete: val_accuracy 0.9876 (s002_m1), 41 s; best 0.9901 (trial 7); "
        "12 of 60 finished")
    pruned = _trial(13, TrialState.PRUNED, seconds=3, depth=5, num_params=81234,
                    reason="too_large: 81,234 params exceed --max-params 1,000")
    assert trial_line(pruned, 13, 60, None, skipped=2) == (
        "trial 13 pruned (depth 5, 81,234 params), 3 s: too_large: 81,234 params exceed "
        "--max-params 1,000; no best yet; 13 of 60 finished; 2 impossible skipped")
    failed = _trial(14, TrialState.FAIL, reason="nan_loss: " + "x" * 200)
    line = trial_line(failed, 13, 60, (0.99, 1))
    assert line.startswith("trial 14 failed, 41 s: nan_loss: xxx") and "…; best 0.9900" in line


def test_trial_lines_keep_the_reasons_nas_mnist_writes_whole():
    """The pruner's rule and the NaN advice were cut at 64 characters ("is not in the top thi…",
    "lower the learnin…"); only a long exception message is cut now."""
    hyperband = ("pruned after epoch 2: val_accuracy 0.9306 "
                 + _pruning_rule(optuna.pruners.HyperbandPruner()))
    nan = f"{NanLossError.reason}: {NanLossError(1, float('nan'))}"
    for state, reason in ((TrialState.PRUNED, hyperband), (TrialState.FAIL, nan)):
        line = trial_line(_trial(11, state, reason=reason), 11, 80, (0.98, 9))
        assert f": {reason}; best 0.9800 (trial 9)" in line and "…" not in line


def test_a_search_without_bars_logs_one_line_per_trial_through_the_runner(caplog):
    """``_trial_finished`` as the Optuna callback the runner gives ``run_trials``."""
    study = optuna.create_study(direction="maximize")
    outcomes = iter([("complete", 0.9), ("impossible", None), ("pruned", None),
                     ("complete", 0.95)])

    def objective(trial: optuna.Trial) -> float:
        kind, value = next(outcomes)
        if kind != "complete":
            reason = "invalid_architecture: 7x7 conv on 2x2" if kind == "impossible" else (
                "pruned after epoch 1: below the median")
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        trial.set_user_attr("val_accuracy", value)
        return value

    caplog.set_level(logging.INFO, logger="nas_mnist")
    with RichProgress(4, disable=True) as progress:
        assert progress.trial_lines
        study.optimize(objective, n_trials=4, callbacks=[partial(_trial_finished, progress)])
        assert progress.progress.tasks[progress.trials].completed == 3  # impossible: not counted
        assert progress.best == 0.95
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 3, lines
    assert lines[0].startswith("trial 0 complete: val_accuracy 0.9000")
    assert lines[0].endswith("best 0.9000 (trial 0); 1 of 4 finished")
    assert lines[1].startswith("trial 2 pruned") and "pruned after epoch 1" in lines[1]
    assert lines[1].endswith("2 of 4 finished; 1 impossible skipped")
    assert lines[2].endswith("best 0.9500 (trial 3); 3 of 4 finished")


def test_live_bars_log_no_trial_lines(caplog):
    caplog.set_level(logging.DEBUG, logger="nas_mnist")
    progress = RichProgress(2, disable=True)
    progress.trial_lines = False  # as in a terminal or Jupyter, where the bars are drawn
    progress.trial_finished(_trial(0, TrialState.COMPLETE, 0.9), 1, (0.9, 0))
    assert caplog.records == [] and progress.best == 0.9


def _result(study: optuna.Study, settings: SearchSettings | None = None, **fields
            ) -> SearchResult:
    return SearchResult(study=study, leaderboard=leaderboard(study), best_trial=best_trial(study),
                        parent_run_id="p", experiment_id="1", tracking_uri="sqlite:///m.db",
                        settings=settings or SearchSettings(study_name="demo"), **fields)


def test_result_repr_is_one_short_line():
    study = optuna.create_study(direction="maximize")
    study.add_trials([
        _trial(0, TrialState.COMPLETE, 0.97, baseline="s002_m1", spec={"layers": []}),
        _trial(1, TrialState.COMPLETE, 0.95),
        _trial(2, TrialState.PRUNED, reason="pruned after epoch 1: below the median"),
    ])
    result = _result(study)
    assert repr(result) == ("SearchResult(study 'demo'; 3 finished trials; best trial 0: "
                            "val_accuracy 0.9700 (baseline s002_m1))")
    assert result.nothing_trained() is None
    assert result.summary().splitlines()[1] == "best trial 0: val_accuracy 0.9700 (baseline s002_m1)"


def test_result_html_is_the_summary_and_the_leaderboards_first_rows(monkeypatch):
    import nas_mnist.searching.result as result_module

    monkeypatch.setattr(result_module, "HTML_ROWS", 2)
    study = optuna.create_study(direction="maximize")
    study.add_trials([
        _trial(0, TrialState.COMPLETE, 0.97, baseline="s002_m1", spec={"layers": []}),
        _trial(1, TrialState.COMPLETE, 0.95),
        _trial(2, TrialState.PRUNED, reason="pruned after epoch 1: below the median"),
    ])
    page = _result(study)._repr_html_()
    assert page.startswith("<p>study &#x27;demo&#x27;: 3 finished trial(s)<br>best trial 0: ")
    assert page.count("</tr>") == 3  # the header and 2 rows
    assert "<td>0.97</td>" in page and "<td>-</td>" in page  # test_accuracy: missing
    assert "NaN" not in page and "&lt;NA&gt;" not in page and "None" not in page
    assert "<td></td>" not in page
    assert "1 more row(s) in <code>.leaderboard</code>" in page


def test_a_search_that_trained_nothing_says_so_in_its_result():
    study = optuna.create_study(direction="maximize")
    study.add_trials([
        _trial(i, TrialState.PRUNED, reason="too_large: 9,000 params exceed --max-params 10")
        for i in range(3)
    ] + [_trial(3, TrialState.PRUNED, reason="invalid_architecture: 7x7 conv on 2x2")])
    result = _result(study)
    assert result.best_trial is None and not result.trained
    line = result.nothing_trained()
    assert line.startswith("no trial trained: 4 trial(s) ran and none completed (4 pruned; "
                           "too_large x3, invalid_architecture x1); use a larger search space")
    assert "--max-params" in line and "--space" in line
    assert line in result.summary().splitlines()
    assert "no trial trained" in repr(result) and "FrozenTrial" not in repr(result)


def test_a_search_whose_time_limit_ran_out_says_so_not_to_enlarge_the_space():
    empty = optuna.create_study(direction="maximize")
    line = _result(empty, SearchSettings(study_name="demo", timeout=5)).nothing_trained()
    assert line.startswith("no trial trained: no trial ran; --timeout 5 s ran out before a "
                           "trial started"), line
    assert line.endswith("raise --timeout") and "--space" not in line
    assert "larger search space" in _result(empty).nothing_trained()  # no time limit: the space

    refused = optuna.create_study(direction="maximize")
    refused.add_trial(_trial(0, TrialState.FAIL, reason="time_budget: it projects ~90 s"))
    budget = SearchSettings(study_name="demo", time_budget="2m")
    line = _result(refused, budget).nothing_trained()
    assert "(1 fail; time_budget x1); --time-budget 2m ran out" in line, line
    assert line.endswith("raise --time-budget") and "--space" not in line
    refused.add_trial(_trial(1, TrialState.PRUNED, reason="too_large: 9,000 params"))
    assert "larger search space" in _result(refused, budget).nothing_trained()


def test_cli_search_whose_trials_were_all_too_large_exits_1_with_one_line(
        workdir, real_mnist_path, capsys):
    from nas_mnist.cli.main import main

    code = main(search_args(real_mnist_path, 2, "--space", "small.yaml", "--baselines", "none",
                            "--max-params", "10", "--final-top-k", "0"))
    out = capsys.readouterr().out
    assert code == 1, out
    trial_lines = [line.rstrip() for line in out.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 2, out  # impossible architectures are counted, not listed
    assert all(" pruned (depth 3, " in line and ": too_large: " in line for line in trial_lines)
    assert trial_lines[-1].endswith("; no best yet; 2 of 2 finished"), out
    no_trial = [line for line in out.splitlines() if line.startswith("no trial trained")]
    assert len(no_trial) == 1 and "--max-params" in no_trial[0], out
