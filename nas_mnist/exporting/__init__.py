"""The best trial as a verified TensorFlow SavedModel: selection, atomic writes, manifest,
verification and the MLflow model."""
