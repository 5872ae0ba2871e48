"""``nas-mnist search``: the main job, an architecture search on MNIST."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nas_mnist.cli.arguments import (
    EXIT_FAILURE,
    EXIT_OK,
    add_data_arguments,
    add_study_arguments,
    non_negative_int,
    positive_float,
    positive_int,
)
from nas_mnist.searching.settings import (
    DEFAULT_SAMPLER,
    ENGINES,
    PRUNERS,
    SAMPLERS,
    TUNERS,
    SearchSettings,
)

DEFAULTS = SearchSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The search's flags, in four groups (shown as such by ``--help``)."""
    _add_budget_arguments(parser.add_argument_group("budget: trials and how long each trains"))
    _add_study_arguments(parser.add_argument_group("study, search space, data and tracking"))
    _add_optimization_arguments(parser.add_argument_group("sampler, pruner, objectives and engine"))
    _add_execution_arguments(parser.add_argument_group("processes, devices and display"))
    parser.set_defaults(storage=None)  # none named: default_storage(--jobs)


def _add_budget_arguments(group: Any) -> None:
    group.add_argument(
        "--trials",
        type=positive_int,
        default=DEFAULTS.trials,
        metavar="N",
        help="finished trials (complete or pruned) the study should hold in total; "
        "re-running resumes up to N (default: 100)",
    )
    group.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULTS.epochs,
        help="training epochs per trial (default: 15)",
    )
    group.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="images per training step for every trial (default: the spec's own, "
        "sampled from the search space)",
    )
    group.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="sampler and training seed (default: 0)"
    )
    group.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                       help="stop starting new trials after this many seconds")
    group.add_argument("--time-budget", metavar="DURATION",
                       help="wall-clock budget of the whole job, final stage included, e.g. 2h, "
                       "45m, 1h30m: no trial starts that the projection says cannot finish in it")
    group.add_argument(
        "--max-params",
        type=positive_int,
        metavar="N",
        help="prune specs with more than N parameters before training",
    )
    group.add_argument("--max-mflops", type=positive_int, metavar="N",
                       help="prune specs whose forward pass costs more than N MFLOPs per image "
                       "before training (a trial's time follows its FLOPs; s000_m1 costs 22)")
    group.add_argument(
        "--final-top-k",
        type=non_negative_int,
        metavar="K",
        help="once the trials are done, retrain the K best specs (and the best baseline) at "
        "full budget and register the champion (default: 3 on all training images, 0 with "
        "--max-train-samples; see nas-mnist retrain)",
    )
    group.add_argument(
        "--final-epochs",
        type=positive_int,
        metavar="E",
        help="epochs per final model of the final stage (default: nas-mnist retrain's)",
    )
    group.add_argument(
        "--allow-mixed-fidelity",
        action="store_true",
        help="resume a study whose finished trials trained with other --epochs or "
        "--max-train-samples (refused otherwise: their val_accuracy is not comparable)",
    )


def _add_study_arguments(group: Any) -> None:
    group.add_argument(
        "--space",
        metavar="FILE|NAME",
        help="search-space file, or the name of a shipped space: default, small_cnn "
        "(default: default)",
    )
    group.add_argument(
        "--allow-space-change",
        action="store_true",
        help="resume a study whose trials were sampled from another search space (refused "
        "otherwise: Optuna fails every trial that samples a parameter whose choices changed)",
    )
    add_study_arguments(group, "study name; an existing study is resumed")
    group.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default sqlite:///mlflow.db)",
    )
    group.add_argument(
        "--baselines",
        default=DEFAULTS.baselines,
        metavar="auto|all|none|NAME,NAME",
        help="documented baselines to seed as the study's first trials, once per study and "
        "within --trials; auto: those inside the search space, at most half of --trials, in "
        "tiers of equal reported accuracy (within 0.2 points), strongest tier first and fewest "
        "FLOPs first within a tier; all: every baseline in that order (default: auto)",
    )
    add_data_arguments(group)


def _add_optimization_arguments(group: Any) -> None:
    group.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"Optuna sampler (default: {DEFAULT_SAMPLER}; docs/benchmarks.md compares them)",
    )
    group.add_argument(
        "--pruner",
        choices=PRUNERS,
        help="Optuna pruner on per-epoch val_accuracy (default: median; none with several "
        "objectives, which Optuna cannot prune)",
    )
    group.add_argument(
        "--objective",
        default=DEFAULTS.objective,
        metavar="NAMES",
        help="val_accuracy, or val_accuracy with params and/or latency for a Pareto front of "
        "accuracy against model size or ms per image, e.g. val_accuracy,params "
        "(default: val_accuracy)",
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULTS.engine,
        help="search engine: Optuna (default) or KerasTuner on the same search space, builder "
        "and MLflow logging, for comparison",
    )
    group.add_argument(
        "--tuner",
        choices=TUNERS,
        default=DEFAULTS.tuner,
        help="KerasTuner tuner with --engine keras-tuner (default: hyperband, with --epochs "
        "as its max_epochs)",
    )
    group.add_argument(
        "--tuner-dir",
        default=DEFAULTS.tuner_dir,
        metavar="DIR",
        help="folder of KerasTuner's state with --engine keras-tuner; re-running resumes "
        "(default: keras_tuner)",
    )


def _add_execution_arguments(group: Any) -> None:
    group.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train in mixed precision (float16 on GPUs, bfloat16 on CPUs); faster on GPUs "
        "with tensor cores, often slower on CPUs",
    )
    group.add_argument(
        "--jobs",
        type=positive_int,
        default=DEFAULTS.jobs,
        metavar="N",
        help="trials that train at the same time on this machine, each in its own worker "
        "process (default: 1, in this process); N > 1 needs --storage journal:///FILE.log or "
        "PostgreSQL",
    )
    group.add_argument(
        "--trials-per-worker",
        type=positive_int,
        default=DEFAULTS.trials_per_worker,
        metavar="N",
        help="with --jobs: trials a worker process runs before it is replaced by a fresh one "
        f"(default: {DEFAULTS.trials_per_worker})",
    )
    group.add_argument(
        "--gpus",
        metavar="IDS",
        help="with --jobs: GPU ids (e.g. 0,1) given to the workers round-robin through "
        "CUDA_VISIBLE_DEVICES; several workers may share one GPU (default: all visible GPUs "
        "for every worker)",
    )
    group.add_argument(
        "--worker-threads",
        type=positive_int,
        metavar="N",
        help="with --jobs: TensorFlow intra- and inter-op threads per worker (default: "
        "TensorFlow's, one per core)",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """The ``SearchSettings`` that the parsed flags describe."""
    from nas_mnist.study.defaults import default_storage

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SearchSettings)
              if f.name != "progress"}
    values["storage"] = values["storage"] or default_storage(values["jobs"])
    return SearchSettings(**values, progress=not args.no_progress)


def jobs_storage_line(args: argparse.Namespace, settings: SearchSettings) -> str | None:
    """The line that says where ``--jobs N`` put a study whose storage was not named."""
    if args.storage is not None or settings.jobs == 1:
        return None
    return (f"--jobs {settings.jobs}: the study is stored in {settings.storage} (an SQLite file "
            f"takes one writing process at a time); pass --storage {settings.storage} to "
            "report, export and later searches")


def run(args: argparse.Namespace) -> int:
    from nas_mnist.console import console
    from nas_mnist.searching.runner import search
    from nas_mnist.study.trial_counts import count_finished
    from nas_mnist.tracking.redaction import redact_uri

    settings = settings_from_args(args)
    line = jobs_storage_line(args, settings)
    if line is not None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    result = search(settings)
    nothing = result.nothing_trained()  # a line saying no trial trained, or None
    if result.study is None:  # the KerasTuner engine
        _print_keras_tuner_result(result)
        if nothing is not None and not result.leaderboard.empty:
            console.print(nothing, style="red", markup=False, soft_wrap=True)
        return EXIT_OK if nothing is None else EXIT_FAILURE
    _print_leaderboard(result.leaderboard, result.queued)
    settings = result.settings
    tracking_uri = redact_uri(result.tracking_uri)  # no password on the screen or in logs
    console.print(f"study:  {settings.study_name!r} in {redact_uri(settings.storage)} "
                  f"({count_finished(result.study)} finished trials)")
    console.print(f"MLflow: experiment {settings.study_name!r} (id {result.experiment_id}), "
                  f"parent run {result.parent_run_id} in {tracking_uri}")
    console.print(f"        browse with: nas-mnist ui --tracking-uri {tracking_uri} "
                  f"--study-name {settings.study_name}")
    if nothing is not None:
        console.print(nothing, style="red", markup=False, soft_wrap=True)
    if result.tracking_unavailable is not None:
        console.print(f"[red]stopped: {result.tracking_unavailable}[/]. The trial it interrupted "
                      "is queued for one retry; start the tracking server again, then run the "
                      "same command to resume")
        return EXIT_FAILURE
    if result.stopped_for_failures:
        console.print("[red]stopped: too many trials failed in a row; see the note column[/]")
        return EXIT_FAILURE
    if result.final is not None:
        from nas_mnist.cli.retrain import print_result

        print_result(result.final)
        return EXIT_FAILURE if result.final.missing or nothing else EXIT_OK
    return EXIT_OK if nothing is None else EXIT_FAILURE


def _print_keras_tuner_result(result: object) -> None:
    from nas_mnist.console import console, table_from_frame

    frame = result.leaderboard
    if frame.empty:
        console.print("no trials ran (the KerasTuner project had already finished; pass a new "
                      "--study-name or more --trials)")
        return
    columns = ("trial", "state", "val_accuracy", "test_accuracy", "params", "epochs_trained",
               "train_seconds", "reason")
    console.print(table_from_frame(frame, columns, title=f"{len(frame)} KerasTuner trials "
                                   "(by val_accuracy)", limit=10))
    from nas_mnist.tracking.redaction import redact_uri

    console.print(f"MLflow: experiment {result.settings.study_name!r} (id "
                  f"{result.experiment_id}), parent run {result.parent_run_id} in "
                  f"{redact_uri(result.tracking_uri)}")


def _print_leaderboard(frame: object, queued: int, limit: int = 10) -> None:
    from nas_mnist.console import console, table_from_frame
    from nas_mnist.study.leaderboard import VIEWS, baseline_comparison, comparison_sentence

    if queued:
        console.print(f"{queued} queued trial(s) (baselines or retries) wait for a later run")
    if frame.empty:
        console.print("no trials yet")
        return
    columns = VIEWS["console"]
    if frame["pareto"].notna().any():  # several objectives: the Pareto front first
        front = int(frame["pareto"].eq(True).sum())
        columns = (*columns[:-1], *(["latency_ms"] if frame["latency_ms"].notna().any() else []),
                   "pareto", columns[-1])
        title = f"Pareto front: {front} of {len(frame)} trials, then the rest by val_accuracy"
        limit = max(limit, front)
    else:
        title = f"top {min(limit, len(frame))} of {len(frame)} trials (by val_accuracy)"
    console.print(table_from_frame(frame, columns, title=title, limit=limit))
    comparison = baseline_comparison(frame)
    if comparison is None:
        return
    console.print(comparison_sentence(comparison))
