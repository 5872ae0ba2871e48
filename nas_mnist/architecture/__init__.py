"""Architectures as data: the spec (a frozen, JSON-serialisable description of a CNN) and the
catalog of documented baselines. Plain Python: nothing here imports TensorFlow."""
