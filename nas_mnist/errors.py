"""nas-mnist's exceptions: one root, two branches.

- ``InputError``: bad user input. Every check of a flag, a keyword argument of
  ``nas_mnist.search``/``export``/``report``, a data file, a search-space file, a storage or
  tracking URI raises a subclass of it, with a message that names the flag or file and says what
  to do. The CLI prints it as ``nas-mnist COMMAND: error: ...`` and exits with status 2; the
  Python API raises it before anything (a study, a run, a file) is created.
- ``RuntimeFailure``: something failed while the command ran on good input (a tracking server
  that stopped answering, workers that keep crashing, an export that does not verify). The CLI
  prints one line and exits with status 1. ``TrialFailure`` is the part of it that ends a single
  trial for a reason the trial records (a NaN loss, a surplus trial): Optuna's log shows it in one
  line, without a traceback.

Both branches derive from ``NasMnistError``; ``InputError`` is also a ``ValueError`` and
``RuntimeFailure`` a ``RuntimeError``, as Python's conventions for such errors go.
"""

from __future__ import annotations


class NasMnistError(Exception):
    """The root of every exception nas-mnist raises on purpose."""


class InputError(NasMnistError, ValueError):
    """Bad user input: the message names the flag, keyword or file and says how to fix it."""


class RuntimeFailure(NasMnistError, RuntimeError):
    """A failure while running on good input; the message says what failed.

    ``hint``, when not empty, is the sentence the CLI adds: what to do next.
    """

    hint = ""


class TrialFailure(RuntimeFailure):
    """A trial ended for a reason nas-mnist expects and records (its ``reason`` attribute).

    ``silent`` failures are not logged at all (a surplus trial is not a failure of anything);
    the others are logged in one line, without a traceback.
    """

    reason = "failed"
    silent = False
