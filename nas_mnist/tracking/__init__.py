"""MLflow: one experiment and parent run per study, one nested run per trial, their artifacts."""
