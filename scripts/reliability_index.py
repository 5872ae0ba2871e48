"""Keep the scenario index of docs/reliability.md equal to the fault tests that exist.

Every test of the fault-test files below is one named scenario: the index lists its name in
words and its node id, between the markers ``<!-- scenario-index:start -->`` and
``<!-- scenario-index:end -->``. CI runs every test, so a listed scenario holds when CI is green.

    python scripts/reliability_index.py --check   # exit 1 when the index is stale (the tests)
    python scripts/reliability_index.py --write   # rewrite the index in place
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- scenario-index:start -->", "<!-- scenario-index:end -->"

FAULT_TESTS = {
    "tests/searching/test_faults.py": "searches under faults (real processes)",
    "tests/searching/test_validation.py": "bad flags, files and URLs",
    "tests/searching/test_taken_over.py": "a trial taken over by recovery",
    "tests/searching/test_worker_lifetime.py": "--jobs workers and their supervisor",
    "tests/study/test_recovery.py": "recovery of dead trials",
    "tests/study/test_locks.py": "one search per SQLite storage",
    "tests/study/test_opening.py": "opening studies",
    "tests/study/test_storage_url.py": "storage URLs",
    "tests/study/test_redaction.py": "passwords never shown",
    "tests/processes/test_signals.py": "signals",
    "tests/tracking/test_tracker_faults.py": "MLflow tracking faults",
    "tests/search_space/test_space_attacks.py": "hostile search-space files",
    "tests/cli/test_doctor.py": "doctor: torn journals, half-made SQLite files",
    "tests/searching/test_disk_space.py": "a full disk",
    "tests/test_database_servers.py": "database servers that refuse",
    "tests/test_data.py": "data files",
}
"""The fault-test files, each with the heading of its scenarios (files not present are
skipped)."""


def collect() -> list[str]:
    """Node ids of every test in ``FAULT_TESTS`` (``pytest --collect-only``)."""
    files = [f for f in FAULT_TESTS if (ROOT / f).exists()]
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *files], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    if done.returncode != 0 or not ids:
        sys.exit(f"pytest could not collect the fault tests:\n{done.stdout[-2000:]}")
    return ids


def in_words(node_id: str) -> str:
    """``test_a_fifo_is_refused[x]`` -> ``a fifo is refused (x)``."""
    name = node_id.split("::")[-1]
    match = re.fullmatch(r"test_(.*?)(\[(.*)\])?", name)
    words = match.group(1).replace("_", " ")
    return f"{words} ({match.group(3)})" if match.group(3) else words


def render(ids: list[str]) -> str:
    """The index: one table per file, numbered across files."""
    lines = [START, "", f"{len(ids)} scenarios, each a test that CI runs "
             "(`python scripts/reliability_index.py --write` regenerates this list).", ""]
    number = 0
    for path, heading in FAULT_TESTS.items():
        mine = [i for i in ids if i.startswith(path + "::")]
        if not mine:
            continue
        lines += [f"### {heading} (`{path}`)", "", "| # | scenario | test |", "|---|---|---|"]
        for node in mine:
            number += 1
            test = node.split("::", 1)[1].replace("|", "\\|")
            lines.append(f"| {number} | {in_words(node).replace('|', '/')} | `{test}` |")
        lines.append("")
    return "\n".join([*lines, END])


def main() -> int:
    parser = argparse.ArgumentParser(prog="reliability_index.py", description=__doc__.split(
        "\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="exit 1 if the index is stale")
    group.add_argument("--write", action="store_true", help="rewrite the index in place")
    args = parser.parse_args()
    text = DOC.read_text()
    if START not in text or END not in text:
        sys.exit(f"{DOC} has no {START} ... {END} markers")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    fresh = before + render(collect()) + after
    if args.write:
        DOC.write_text(fresh)
        return 0
    if fresh != text:
        print(f"{DOC.relative_to(ROOT)}'s scenario index is stale: run "
              "python scripts/reliability_index.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
