"""``nas-mnist doctor``: check a study storage and repair a torn journal or a half-made SQLite
file, after a backup (``nas_mnist.study.storage_repair``).

Exit 0: healthy (nothing written) or repaired; 2: damage that needs a choice (the line says
which flag or backup to use), a bad URL, or a search running on the file; 1: the backup or
repair could not be written (nothing changed).
"""

from __future__ import annotations

import argparse

from nas_mnist.cli.arguments import EXIT_OK, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nas_mnist.study.defaults import DEFAULT_STORAGE

    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"the storage to check: journal:///FILE.log, sqlite:///FILE.db or "
        f"postgresql://... (default: {DEFAULT_STORAGE}). A torn last journal record is cut and "
        "a SQLite file whose creation was cut gets its missing indexes, each after a copy to "
        "FILE.bak-<time>; a healthy storage is not written to",
    )
    parser.add_argument(
        "--drop-from-line",
        type=positive_int,
        metavar="N",
        help="journal with a corrupt line in the middle: back it up and drop line N and every "
        "line after it (N at most the corrupt line; the study goes back to its state before "
        "line N). Without it such a journal is reported, not changed",
    )


def run(args: argparse.Namespace) -> int:
    from nas_mnist.study.storage_repair import doctor

    report = doctor(args.storage, drop_from_line=args.drop_from_line)
    for line in report.lines:
        print(f"nas-mnist doctor: {line}", flush=True)
    return EXIT_OK
