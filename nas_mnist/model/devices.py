"""Devices and numerics: which Keras backend and device run the trials, GPU memory, precision.

Set-up happens once per process, before the first model: ``configure_devices()`` turns on GPU
memory growth (TensorFlow) or turns off whole-GPU preallocation (JAX), so that several worker
processes can share one GPU; ``set_mixed_precision()`` sets Keras' global dtype policy.
"""

from __future__ import annotations

JAX_PREALLOCATE_ENV = "XLA_PYTHON_CLIENT_PREALLOCATE"
"""JAX preallocates 75% of GPU memory at start-up unless this is "false" (JAX's GPU memory
allocation docs); ``nas_mnist/__init__.py`` sets it to "false" before JAX can be imported (unless
the user set it), JAX's equivalent of memory growth."""


def keras_backend() -> str:
    """The Keras backend in use ("tensorflow", "jax", ...), from ``KERAS_BACKEND`` or Keras'
    config."""
    import keras

    return keras.backend.backend()


def configure_devices() -> str:
    """GPU memory growth on; returns a one-line description of the devices that train.

    TensorFlow: ``tf.config.experimental.set_memory_growth`` for every GPU (must run before the
    GPU is first used; a GPU already initialised is left as it is). JAX: ``JAX_PREALLOCATE_ENV``
    is set at import of ``nas_mnist`` (see ``nas_mnist/__init__.py``).
    """
    backend = keras_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised by an earlier call
                pass
        names = [g.name for g in gpus]
    elif backend == "jax":
        import jax

        names = [f"{d.platform}:{d.device_kind}" for d in jax.devices() if d.platform != "cpu"]
    else:
        names = []
    where = f"GPU ({', '.join(names)})" if names else "CPU"
    return f"Keras backend {backend} on {where}"


def visible_gpus() -> list[str]:
    """Names of the GPUs the Keras backend sees in this process, in its id order; [] when it
    trains on the CPU. TensorFlow: its physical GPU devices; JAX: its non-CPU devices; torch:
    its CUDA devices. All honour ``CUDA_VISIBLE_DEVICES``.

    Imports the backend (TensorFlow: seconds), and nothing else: ask it only when GPUs matter
    (``--gpus``), never for ``--help``. Safe before ``configure_devices`` (listing the physical
    devices does not initialise them).
    """
    backend = keras_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [g.name for g in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def set_threads(threads: int | None) -> None:
    """TensorFlow intra- and inter-op threads of this process (``None``: TensorFlow's default,
    one per core). Must run before TensorFlow runs its first operation; other backends ignore it.

    Several ``--jobs`` workers on one CPU each default to all cores, so they oversubscribe it;
    ``docs/benchmarks.md`` measures both.
    """
    if threads is None or keras_backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime already started: keep what it has
        pass


def gpu_available() -> bool:
    """True when the Keras backend sees a GPU."""
    return "GPU (" in configure_devices()


def set_mixed_precision(enabled: bool) -> str:
    """Set Keras' global dtype policy; returns its name.

    Enabled: "mixed_float16" on a GPU (tensor cores), "mixed_bfloat16" on a CPU (Keras' mixed
    precision guide: float16 needs a GPU, bfloat16 runs on CPUs, fast only with AVX512-BF16 or
    AMX). Layers compute in the low precision and keep float32 weights; the builder keeps the
    output softmax in float32. Disabled: "float32".
    """
    import keras

    policy = "float32"
    if enabled:
        policy = "mixed_float16" if gpu_available() else "mixed_bfloat16"
    keras.config.set_dtype_policy(policy)
    return policy
