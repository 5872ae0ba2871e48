"""Search spaces as data: the YAML/JSON/TOML files shipped in ``spaces/`` and the modules that turn
a file into ``trial.suggest_*`` calls and specs. Import from ``space`` (the public names); the
other modules are its parts: ``loading`` (files), ``checks`` (validation on top of
``optuna.distributions``), ``sampling`` (a whole spec), ``blocks`` and ``per_layer`` (one module
per layout, behind ``layout.Layout``), ``shared_sections`` (optimizer, batch size, training),
``leaves``, ``initializers`` and ``trials`` (the ``SuggestingTrial`` protocol and the stand-ins).
Plain Python: nothing here imports TensorFlow."""
