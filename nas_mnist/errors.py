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


class DiskSpaceError(TrialFailure):
    """A local folder the search writes to has less free space than the floor, or a write failed
    on a full disk (``nas_mnist.disk_space``): the trial stops with reason ``disk_full`` and is
    queued for one retry, the search stops (exit 1, one line with ``hint``)."""

    reason = "disk_full"
    silent = True  # the search's own line says it; Optuna's log would repeat it
    hint = ("Free some space (or set NAS_MNIST_MIN_FREE_MB lower; 0 turns the check off), then "
            "run the same command again: the stopped trial is queued for one retry")
