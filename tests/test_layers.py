"""The package's layout rules: imports run one way, and ``--help`` stays light."""

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
    "search": 6,
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
}


def _stage(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
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
        if module in ("nas_mnist.__init__", "nas_mnist.__main__"):
            continue
        for imported in _imports(path):
            if LAYERS[_stage(imported)] > LAYERS[_stage(module)]:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


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
