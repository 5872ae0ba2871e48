"""Processes: the ``--jobs`` supervisor (it imports no training code) and signal handling."""
