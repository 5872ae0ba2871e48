"""Issue 20: one input contract for every served nas-mnist model (``tracking/served_model.py``):
uint8 0-255 or float 0-1 images shaped (n, 28, 28), (n, 28, 28, 1) or (n, 784) are scaled inside
the model's pyfunc; anything else is refused in one line (HTTP 400 from ``mlflow models serve``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from nas_mnist.tracking.served_model import InputRefused, answer, as_model_input

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
SCALED = PIXELS.astype(np.float32)[..., None] / 255


@pytest.mark.parametrize("name, sent", [
    ("uint8 (n, 28, 28)", PIXELS),
    ("uint8 (n, 28, 28, 1)", PIXELS[..., None]),
    ("int64 (n, 784), as JSON integers arrive", PIXELS.reshape(3, 784).astype(np.int64)),
    ("float (n, 784) in [0, 1]", (PIXELS / 255).reshape(3, 784)),
    ("float32 (n, 28, 28, 1)", SCALED),
    ("nested lists of integers", PIXELS.tolist()),
    ("a dict of one array (an 'inputs' payload)", {"image": PIXELS}),
    ("a DataFrame of 784 pixel columns", pd.DataFrame(PIXELS.reshape(3, 784))),
    ("a DataFrame of one image column", pd.DataFrame({"image": list(PIXELS)})),
])
def test_accepted_inputs_are_scaled_to_float32_images(name, sent):
    images = as_model_input(sent)
    assert images.dtype == np.float32 and images.shape == (3, 28, 28, 1), name
    np.testing.assert_allclose(images, SCALED, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("sent, says", [
    (PIXELS.astype(np.float64), "outside [0, 1] (0-255 pixels sent as floats"),
    (-SCALED, "outside [0, 1]"),
    (np.full((1, 784), np.nan), "NaN"),
    (np.zeros((2, 27, 27), np.uint8), "got shape (2, 27, 27)"),
    (np.zeros((28, 28), np.uint8), "got shape (28, 28)"),
    (np.zeros((2, 28, 28, 3), np.uint8), "got shape (2, 28, 28, 3)"),
    (np.zeros((0, 784)), "got no image"),
    (np.full((1, 784), 256), "from 256 to 256, outside 0-255"),
    (np.array([["a"] * 784]), "got <U1 values"),
    (np.ones((1, 784), bool), "got bool values"),
    ({"image": PIXELS, "other": PIXELS}, "got 2 named inputs"),
    ([[0] * 784, [0] * 783], "differ in shape"),
])
def test_other_inputs_are_refused_in_one_line_that_says_what_to_send(sent, says):
    with pytest.raises(InputRefused) as refused:
        as_model_input(sent)
    message = refused.value.message
    assert says in message and "\n" not in message
    assert "uint8 pixels 0-255 or floats in [0, 1]" in message
    assert refused.value.get_http_status_code() == 400


def test_the_scoring_servers_prefix_does_not_reach_the_message():
    """MLflow's scoring server does ``e.message = f"Failed to predict data '{data}'..."``."""
    error = InputRefused("got shape (1, 2)")
    error.message = f"Failed to predict data '{PIXELS}'. \nError: {error.message}"
    assert error.message == "got shape (1, 2)"
    assert json.loads(error.serialize_as_json())["message"] == "got shape (1, 2)"


def test_the_answer_is_the_label_and_the_ten_probabilities():
    probabilities = np.eye(10, dtype=np.float64)[[3, 7]]
    served = answer(probabilities)
    assert served["label"].tolist() == [3, 7] and served["label"].dtype == np.int64
    assert served["probabilities"].dtype == np.float32 and served["probabilities"].shape == (2, 10)


# --- a logged model, through pyfunc and `mlflow models serve` --------------------------------

def _trained_model(real_mnist_path):
    """A small dense classifier trained 2 epochs on 3,000 MNIST images (about 0.9 accuracy)."""
    import keras

    from nas_mnist.data import load_mnist

    data = load_mnist(real_mnist_path)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x_train = data.x_train[:3000, ..., None].astype(np.float32) / 255
    model.fit(x_train, data.y_train[:3000], epochs=2, batch_size=64, verbose=0)
    return model, data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port: int, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_until_up(server: subprocess.Popen, port: int, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow models serve exited {server.returncode}: "
                                 f"{server.communicate()[0][-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("mlflow models serve did not answer /ping")


@pytest.mark.slow
def test_a_logged_trial_model_serves_the_contract_through_mlflow_models_serve(
        tmp_path, real_mnist_path):
    import mlflow

    from nas_mnist.tracking.models import log_trial_model

    model, data = _trained_model(real_mnist_path)
    tracking_uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = mlflow.MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment("demo"))
    model_uri = log_trial_model(model, tracking_uri, run.info.run_id)
    images = data.x_test[:20]  # MNIST's own uint8 (20, 28, 28)
    expected = model.predict(images[..., None] / np.float32(255), verbose=0).argmax(axis=1)
    assert (expected == data.y_test[:20]).mean() >= 0.8  # the labels are right, mostly

    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, TF_CPP_MIN_LOG_LEVEL="3",
               # MLflow starts `uvicorn` from PATH: this Python's, activated or not
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        _wait_until_up(server, port)
        answers = {
            "inputs, uint8 (n, 28, 28)": _post(port, {"inputs": images.tolist()}),
            "instances, float (n, 784)": _post(
                port, {"instances": (images.reshape(20, 784) / 255).tolist()}),
            "dataframe_split, 784 integer columns": _post(port, {"dataframe_split": {
                "columns": [f"p{i}" for i in range(784)],
                "data": images.reshape(20, 784).tolist()}}),
        }
        for form, (status, body) in answers.items():
            assert status == 200, (form, body)
            assert body["predictions"]["label"] == expected.tolist(), form
            probabilities = np.array(body["predictions"]["probabilities"])
            assert probabilities.shape == (20, 10), form
            np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
        status, body = _post(port, {"inputs": images.astype(float).tolist()})  # 0-255 floats
        assert status == 400
        assert body["message"].startswith("got floats from 0 to 255, outside [0, 1]")
        assert "\n" not in body["message"]
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "Traceback" not in output
