"""The repository-wide rule of ``conftest.no_traceback_printed`` fails a test whose process
prints a Python traceback, and spares one marked ``traceback_expected``."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CASES = """
import subprocess, sys
import pytest

def _crash():
    return subprocess.run([sys.executable, "-c", "raise ValueError('boom')"],
                          capture_output=True, text=True)

def test_process_prints_a_traceback():
    assert _crash().returncode == 1

@pytest.mark.traceback_expected
def test_marked_one():
    assert _crash().returncode == 1

def test_one_line_error():
    out = subprocess.run([sys.executable, "-c", "import sys; sys.exit('error: one line')"],
                         capture_output=True, text=True)
    assert out.returncode == 1
"""


@pytest.mark.traceback_expected  # the inner run's report shows the traceback it caught
def test_the_rule_fails_a_test_whose_process_prints_a_traceback(pytester):
    conftest = Path(__file__).with_name("conftest.py").read_text()
    pytester.makeconftest(conftest.replace("from support import REPO_ROOT, SMALL_SPACE\n", ""))
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*a command printed a Python traceback*", "*ValueError: boom*"])
    assert "ERROR test_cases.py::test_process_prints_a_traceback" in result.stdout.str()
