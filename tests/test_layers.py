"""The package's layout rules: imports run one way (no circle, no import from a layer above or
from another package of the same layer), modules and functions stay small, ``--help`` stays
light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nas_mnist

PACKAGE = Path(nas_mnist.__file__).parent

# Higher layers may import lower ones (and their own), never the reverse.
LAYERS = {
    "cli": 7,
    "reporting": 6,
    "exporting": 6,
    "searching": 6,
    "processes": 5,
    "study": 4,
    "tracking": 3,
    "model": 2,
    "search_space": 2,
    "architecture": 1,
    "data": 0,
    "plots": 0,
    "console": 0,
    "trial_attributes": 0,
    "errors": 0,
    "environment": 0,
    "sqlite_files": 0,
    "filelock": 0,
    "timing": 0,
    "atomic_folders": 0,
    "database_servers": 0,
    "disk_space": 0,
}
"""Bottom modules (layer 0) may import each other (without a circle); packages of one layer may
not import each other (exporting and reporting read studies through ``study``, never through
``searching``)."""


MAX_MODULE_LINES = 600
LONG_MODULES = {"architecture/baselines.py", "architecture/spec.py"}
"""The baseline catalog (a data table) and the spec (one concept) may be longer."""

MAX_FUNCTION_LINES = 60
"""Lines from ``def`` (or its first decorator) to the end, docstrings excluded."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _stage(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """The nas_mnist modules ``path`` imports (``from package import module`` counts as the
    module), anywhere in the file (inside functions too)."""
    known = _modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("nas_mnist.")}


def test_every_stage_has_a_layer():
    stages = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
              if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
              and p.name not in ("__init__.py", "__main__.py")}
    assert stages == set(LAYERS)


def test_no_module_imports_from_a_layer_above_it():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts)
        if module in ("nas_mnist.__init__", "nas_mnist.__main__") or len(relative.parts) < 2:
            continue
        for imported in _imports(path):
            ours, theirs = _stage(module), _stage(imported)
            if LAYERS[theirs] > LAYERS[ours] or (
                    LAYERS[theirs] == LAYERS[ours] > 0 and theirs != ours):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_exporting_and_reporting_read_studies_without_the_search():
    for stage in ("exporting", "reporting"):
        for path in (PACKAGE / stage).rglob("*.py"):
            assert not {m for m in _imports(path) if _stage(m) == "searching"}, path


def test_no_import_circle_between_modules():
    modules = _modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    # Package __init__ modules that import nothing are no edge; a cycle is a path back to its
    # start (depth-first search, colouring modules being visited).
    visiting, done, cycles = set(), set(), []

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append(trail[trail.index(name):] + [name])
            return
        visiting.add(name)
        for imported in sorted(graph[name]):
            visit(imported, [*trail, name])
        visiting.discard(name)
        done.add(name)

    for name in sorted(graph):
        if name != "nas_mnist":
            visit(name, [])
    assert cycles == []


def test_no_module_is_over_600_lines():
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert set(long) <= LONG_MODULES, long


def _function_lines(node: ast.AST) -> int:
    """Lines of a function without the docstrings in it (its own and nested ones)."""
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    docstrings = set()
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                ast.get_docstring(inner) is not None:
            first = inner.body[0]
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for line in range(start, node.end_lineno + 1) if line not in docstrings)


def test_no_function_is_over_60_lines():
    paths = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "scripts").glob("*.py")]
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    _function_lines(node) > MAX_FUNCTION_LINES:
                long.append(f"{path.name}:{node.lineno} {node.name} {_function_lines(node)}")
    assert long == []


def test_help_imports_neither_tensorflow_nor_optuna():
    code = ("import sys\nfrom nas_mnist.cli.main import main\n"
            "for c in ([], ['search'], ['export'], ['report'], ['baselines'], ['ui'], ['dashboard'], ['predict']):\n"
            "    try:\n        main([*c, '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('tensorflow', 'optuna', 'mlflow', 'keras') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
