"""``nas-mnist search``: the main job, an architecture search on MNIST."""

from __future__ import annotations

import argparse

from nas_mnist.cli.arguments import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_data_arguments,
    add_study_arguments,
    load_data,
    positive_float,
    positive_int,
)
from nas_mnist.engine.study import DEFAULT_SAMPLER, PRUNERS, SAMPLERS

LEADERBOARD_COLUMNS = (
    "trial",
    "baseline",
    "state",
    "val_accuracy",
    "test_accuracy",
    "params",
    "depth",
    "kernel_sizes",
    "optimizer",
    "train_seconds",
    "note",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trials",
        type=positive_int,
        default=100,
        metavar="N",
        help="finished trials (complete or pruned) the study should hold in total; "
        "re-running resumes up to N (default: 100)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=15, help="training epochs per trial (default: 15)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="images per training step for every trial (default: the spec's own, "
        "sampled from the search space)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler and training seed (default: 0)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="stop starting new trials after this many seconds",
    )
    parser.add_argument(
        "--space",
        metavar="FILE",
        help="search-space file, or the name of a shipped space: default, small_cnn "
        "(default: default)",
    )
    add_study_arguments(parser, "study name; an existing study is resumed")
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default sqlite:///mlflow.db)",
    )
    parser.add_argument(
        "--max-params",
        type=positive_int,
        metavar="N",
        help="prune specs with more than N parameters before training",
    )
    parser.add_argument(
        "--baselines",
        default="all",
        metavar="all|none|NAME,NAME",
        help="documented baselines to seed as the study's first trials, once per "
        "study (default: all)",
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help=f"Optuna sampler (default: {DEFAULT_SAMPLER}; docs/benchmarks.md compares them)",
    )
    parser.add_argument(
        "--pruner",
        choices=PRUNERS,
        help="Optuna pruner on per-epoch val_accuracy (default: median; none with several "
        "objectives, which Optuna cannot prune)",
    )
    parser.add_argument(
        "--objective",
        default="val_accuracy",
        metavar="NAMES",
        help="val_accuracy, or val_accuracy with params and/or latency for a Pareto front of "
        "accuracy against model size or ms per image, e.g. val_accuracy,params "
        "(default: val_accuracy)",
    )
    parser.add_argument(
        "--engine",
        choices=("optuna", "keras-tuner"),
        default="optuna",
        help="search engine: Optuna (default) or KerasTuner on the same search space, builder "
        "and MLflow logging, for comparison",
    )
    parser.add_argument(
        "--tuner",
        choices=("hyperband", "bayesian", "random"),
        default="hyperband",
        help="KerasTuner tuner with --engine keras-tuner (default: hyperband, with --epochs "
        "as its max_epochs)",
    )
    parser.add_argument(
        "--tuner-dir",
        default="keras_tuner",
        metavar="DIR",
        help="folder of KerasTuner's state with --engine keras-tuner; re-running resumes "
        "(default: keras_tuner)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train in mixed precision (float16 on GPUs, bfloat16 on CPUs); faster on GPUs "
        "with tensor cores, often slower on CPUs",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Validate the settings, then search holding the storage's worker lock (``engine.locks``:
    one search per SQLite storage, guaranteed by the OS)."""
    from nas_mnist.engine.locks import single_worker
    from nas_mnist.engine.validation import validate_search_settings

    # 1. Validate every input before anything is created.
    validate_search_settings(storage=args.storage, study_name=args.study_name, seed=args.seed,
                             tracking_uri=args.tracking_uri, engine=args.engine,
                             tuner_dir=args.tuner_dir)
    if args.engine != "optuna":
        return _search(args)
    with single_worker(args.storage, args.study_name):
        return _search(args)


def _search(args: argparse.Namespace) -> int:
    from nas_mnist.architecture.baselines import select_baselines
    from nas_mnist.console import RichProgress, console
    from nas_mnist.engine.recovery import (
        close_orphan_runs,
        handle_dead_trial,
        live_workers,
        recover_dead_trials,
    )
    from nas_mnist.engine.seeding import seed_baselines
    from nas_mnist.engine.study import (
        count_finished,
        make_sampler,
        open_study,
        parse_objectives,
        run_trials,
        storage_lock,
    )
    from nas_mnist.model.devices import configure_devices, set_mixed_precision
    from nas_mnist.search_space.space import load_search_space
    from nas_mnist.tracking.tracker import EXPERIMENT_ATTR, Tracker

    try:
        baselines = select_baselines(args.baselines)
    except ValueError as exc:
        raise UsageError(f"--baselines: {exc}") from None
    try:
        objectives = parse_objectives(args.objective)
    except ValueError as exc:
        raise UsageError(f"--objective: {exc}") from None
    pruner = args.pruner or ("median" if len(objectives) == 1 else "none")
    if len(objectives) > 1 and pruner != "none":
        raise UsageError(f"--pruner {pruner}: Optuna cannot prune trials of a multi-objective "
                         f"study; drop --pruner or pass --pruner none with --objective "
                         f"{args.objective}")
    if args.engine == "keras-tuner":
        if len(objectives) > 1 or args.sampler != DEFAULT_SAMPLER or args.pruner:
            raise UsageError("--engine keras-tuner takes --tuner, not --sampler, --pruner or "
                             "several objectives (those are Optuna's)")
        from nas_mnist.engine.keras_tuner_engine import run_keras_tuner_search

        return run_keras_tuner_search(args)
    if args.sampler == "gp":
        try:
            make_sampler(0, "gp")
        except ValueError as exc:
            raise UsageError(f"--sampler: {exc}") from None
    devices = configure_devices()
    precision = set_mixed_precision(args.mixed_precision)
    space = load_search_space(args.space)
    data = load_data(args)
    tracker = Tracker(args.tracking_uri)
    tracker.check()

    # 2. Study, dead trials of earlier runs, baselines and parent run.
    def on_stale_trial(study: object, trial: object) -> None:
        handle_dead_trial(study, trial, tracker, "killed: its worker sent no heartbeat")

    study, created = open_study(
        args.storage, args.study_name, seed=args.seed, on_stale_trial=on_stale_trial,
        sampler=args.sampler, pruner=pruner, objectives=objectives, epochs=args.epochs,
    )
    others = live_workers(study)
    if others and args.storage.startswith("sqlite"):
        raise UsageError(
            f"another worker ({', '.join(sorted(others))}) is running study {args.study_name!r} "
            "on this SQLite storage; SQLite locks under concurrent writers, so run several "
            "workers on a PostgreSQL storage (see the README's 'Several workers')"
        )
    for number in recover_dead_trials(study, tracker):
        console.print(
            f"trial {number} was left running by a dead worker: marked failed, its "
            "configuration queued for one retry"
        )
    # Seeding reads the study, then enqueues what is missing: workers take turns.
    with storage_lock(args.storage, f"seed:{args.study_name}"):
        seed_baselines(study, space, baselines)
    parent_run_id = tracker.attach_parent_run(study, wait_seconds=0 if created else 30)
    experiment_id = study.user_attrs[EXPERIMENT_ATTR]
    closed = close_orphan_runs(study, tracker, parent_run_id)
    if closed:
        console.print(f"closed {len(closed)} MLflow run(s) an earlier search left running")
    done = count_finished(study)
    console.print(
        f"[bold]study[/] {args.study_name!r} in {args.storage}: {done} of {args.trials} "
        f"trials finished; {space.describe()}; {data.describe()}"
    )
    console.print(
        f"sampler {args.sampler}, pruner {pruner}, objective {','.join(objectives)}; "
        f"{devices}, dtype policy {precision}"
    )

    # 3. Trials.
    from nas_mnist.engine.objective import Objective, ObjectiveConfig
    from nas_mnist.reporting.report import ParentRunRefresher

    config = ObjectiveConfig(
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        max_params=args.max_params,
        max_trials=args.trials,
        objectives=objectives,
    )
    status = "FINISHED"
    with RichProgress(args.trials, done, disable=args.no_progress) as progress:
        objective = Objective(
            space, data, tracker, experiment_id, parent_run_id, config, listener=progress
        )
        try:
            outcome = run_trials(
                study,
                objective,
                args.trials,
                timeout=args.timeout,
                # the parent run's study/ leaderboard and plots, refreshed as trials finish
                callbacks=[ParentRunRefresher(tracker, parent_run_id, n_trials=args.trials)],
            )
        except BaseException:
            status = "KILLED"
            tracker.fail_fast()  # the clean-up must not keep Ctrl-C waiting on a server
            raise
        finally:
            tracker.finish_parent_run(parent_run_id, status)

    # 4. Where things are.
    _print_leaderboard(study)
    console.print(
        f"study:  {args.study_name!r} in {args.storage} ({count_finished(study)} finished trials)"
    )
    console.print(
        f"MLflow: experiment {args.study_name!r} (id {experiment_id}), parent run "
        f"{parent_run_id} in {tracker.tracking_uri}"
    )
    console.print(
        f"        browse with: nas-mnist ui --tracking-uri {tracker.tracking_uri} "
        f"--study-name {args.study_name}"
    )
    if tracker.unavailable is not None:
        console.print(f"[red]stopped: {tracker.unavailable}[/]. The trial it interrupted is "
                      "queued for one retry; start the tracking server again, then run the "
                      "same command to resume")
        return EXIT_FAILURE
    if outcome["stopped_for_failures"]:
        console.print("[red]stopped: too many trials failed in a row; see the note column[/]")
        return EXIT_FAILURE
    return EXIT_OK


def _print_leaderboard(study: object, limit: int = 10) -> None:
    from nas_mnist.console import console, table_from_frame
    from nas_mnist.engine.leaderboard import baseline_comparison, leaderboard

    frame = leaderboard(study)
    queued = int(frame["state"].eq("waiting").sum())
    frame = frame[frame["state"].ne("waiting")]
    if queued:
        console.print(f"{queued} queued trial(s) (baselines or retries) wait for a later run")
    if frame.empty:
        console.print("no trials yet")
        return
    columns = LEADERBOARD_COLUMNS
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
    test_gain = comparison["test_accuracy_gain"]
    console.print(
        f"best searched trial {comparison['searched_trial']} vs best baseline "
        f"{comparison['baseline']} (trial {comparison['baseline_trial']}): val_accuracy "
        f"{comparison['val_accuracy_gain']:+.4f}"
        + (f", test_accuracy {test_gain:+.4f}" if test_gain is not None else "")
    )
