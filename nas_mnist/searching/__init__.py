"""One search: its settings, the objective, the trial budget, baseline trials, the pipeline that
the in-process search, a ``--jobs`` worker and the KerasTuner adapter share, and its result."""
