"""The scripts under ``scripts/`` start: each answers ``--help`` (what ``.ci/run`` relies on), and
every ``nas_mnist`` name they import, at the top or inside a function, still exists."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support import REPO_ROOT

SCRIPTS = sorted((REPO_ROOT / "scripts").glob("*.py"))


def run_help(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_every_script_answers_help_with_its_usage():
    assert len(SCRIPTS) >= 5
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(SCRIPTS, pool.map(run_help, SCRIPTS), strict=True))
    failures = {script.name: f"exit {done.returncode}: {done.stderr[-1500:]}"
                for script, done in results.items()
                if done.returncode != 0 or f"usage: {script.name}" not in done.stdout}
    assert failures == {}


def module_file(module: str) -> Path | None:
    """The source file of ``nas_mnist`` module ``module`` (dotted), or None if there is none."""
    base = REPO_ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def top_level_names(path: Path) -> set[str]:
    """Names a module binds at its top level (also inside top-level if/try/with blocks)."""
    names: set[str] = set()
    statements = list(ast.parse(path.read_text()).body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                statements.extend(getattr(node, field, []))
    return names


def unresolved_imports(script: Path) -> list[str]:
    """``nas_mnist`` imports of ``script`` whose module or name does not exist."""
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            missing += [a.name for a in node.names
                        if a.name.startswith("nas_mnist") and module_file(a.name) is None]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nas_mnist"):
            source = module_file(node.module)
            if source is None:
                missing.append(node.module)
                continue
            defined = top_level_names(source)
            missing += [f"{node.module}.{a.name}" for a in node.names
                        if a.name not in defined and module_file(f"{node.module}.{a.name}") is None]
    return missing


def test_every_nas_mnist_import_in_the_scripts_resolves():
    missing = {script.name: unresolved_imports(script) for script in SCRIPTS}
    assert {name: names for name, names in missing.items() if names} == {}


def test_the_reliability_index_lists_every_fault_test_and_at_least_100():
    done = subprocess.run([sys.executable, "scripts/reliability_index.py", "--check"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    index = (REPO_ROOT / "docs/reliability.md").read_text().split(
        "<!-- scenario-index:start -->")[1].split("<!-- scenario-index:end -->")[0]
    rows = [line for line in index.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert len(rows) >= 100
