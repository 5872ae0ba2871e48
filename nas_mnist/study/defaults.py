"""A study's defaults and the names of its samplers, pruners and objectives (light to import:
no Optuna, so that ``nas-mnist --help`` stays fast)."""

DEFAULT_STORAGE = "sqlite:///nas_mnist.db"
DEFAULT_STUDY_NAME = "nas-mnist"
SAMPLERS = ("tpe", "random", "gp", "nsga2")
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("val_accuracy", "params", "latency")
"""Objective names: val_accuracy (maximized) first, then optional secondary objectives,
minimized: params (parameter count) and latency (milliseconds per image)."""
DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER = "median"
