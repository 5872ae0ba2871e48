"""The one exception type for bad user input.

Every check of user input (a flag, a keyword argument of ``nas_mnist.search``/``export``/
``report``, a data file, a search-space file, a storage or tracking URI) raises a subclass of
``InputError`` with a message that names the flag or file and says what to do. The CLI prints
that message as ``nas-mnist COMMAND: error: ...`` and exits with status 2; the Python API raises
it before anything (a study, a run, a file) is created.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: the message names the flag, keyword or file and says how to fix it."""
