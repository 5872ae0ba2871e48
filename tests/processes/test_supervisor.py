"""The ``--jobs`` supervisor's module stays free of training code (its behaviour with fake
workers: ``tests/searching/test_jobs.py``)."""

from __future__ import annotations

import subprocess
import sys


def test_the_supervisor_imports_no_training_code():
    code = ("import sys\nimport nas_mnist\nbefore = set(sys.modules)\n"
            "import nas_mnist.processes.supervisor\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('tensorflow', 'keras', 'jax', 'mlflow') or m.startswith(('nas_mnist.model', "
            "'nas_mnist.search', 'nas_mnist.tracking'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
