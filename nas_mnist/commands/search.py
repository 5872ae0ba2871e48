"""``nas-mnist search``: the main job, an architecture search on MNIST."""

from __future__ import annotations

import argparse

from nas_mnist.commands._common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_data_arguments,
    add_study_arguments,
    load_data,
    positive_float,
    positive_int,
)

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
        "--space", metavar="FILE", help="search-space file (default: search_spaces/default.yaml)"
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from nas_mnist.baselines import select_baselines
    from nas_mnist.console import RichProgress, console
    from nas_mnist.recovery import handle_dead_trial, live_workers, recover_dead_trials
    from nas_mnist.search_space import load_search_space
    from nas_mnist.seeding import seed_baselines
    from nas_mnist.study import (
        count_finished,
        open_study,
        run_trials,
        storage_lock,
        validate_storage_url,
    )
    from nas_mnist.tracking import EXPERIMENT_ATTR, Tracker

    # 1. Validate every input before anything is created.
    validate_storage_url(args.storage)
    try:
        baselines = select_baselines(args.baselines)
    except ValueError as exc:
        raise UsageError(f"--baselines: {exc}") from None
    space = load_search_space(args.space)
    data = load_data(args)
    tracker = Tracker(args.tracking_uri)
    tracker.check()

    # 2. Study, dead trials of earlier runs, baselines and parent run.
    def on_stale_trial(study: object, trial: object) -> None:
        handle_dead_trial(study, trial, tracker, "killed: its worker sent no heartbeat")

    study, created = open_study(
        args.storage, args.study_name, seed=args.seed, on_stale_trial=on_stale_trial
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
    done = count_finished(study)
    console.print(
        f"[bold]study[/] {args.study_name!r} in {args.storage}: {done} of {args.trials} "
        f"trials finished; {space.describe()}; {data.describe()}"
    )

    # 3. Trials.
    from nas_mnist.objective import Objective, ObjectiveConfig
    from nas_mnist.report import ParentRunRefresher

    config = ObjectiveConfig(
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        max_params=args.max_params,
        max_trials=args.trials,
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
    if outcome["stopped_for_failures"]:
        console.print("[red]stopped: too many trials failed in a row; see the note column[/]")
        return EXIT_FAILURE
    return EXIT_OK


def _print_leaderboard(study: object, limit: int = 10) -> None:
    from nas_mnist.console import console, table_from_frame
    from nas_mnist.leaderboard import baseline_comparison, leaderboard

    frame = leaderboard(study)
    queued = int(frame["state"].eq("waiting").sum())
    frame = frame[frame["state"].ne("waiting")]
    if queued:
        console.print(f"{queued} queued trial(s) (baselines or retries) wait for a later run")
    if frame.empty:
        console.print("no trials yet")
        return
    title = f"top {min(limit, len(frame))} of {len(frame)} trials (by val_accuracy)"
    console.print(table_from_frame(frame, LEADERBOARD_COLUMNS, title=title, limit=limit))
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
