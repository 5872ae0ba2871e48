"""Search spaces as data: the YAML/JSON/TOML files shipped in ``spaces/`` and the module that turns
a file into ``trial.suggest_*`` calls and specs. Plain Python: nothing here imports TensorFlow."""
