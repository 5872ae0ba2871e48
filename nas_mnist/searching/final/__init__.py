"""The final stage of a search: its best specs retrained at full budget as final models (the
Optuna study ``<study>/final``), the champion and the ensemble published in the MLflow Model
Registry (``nas_mnist.retrain``, ``nas-mnist retrain``)."""
