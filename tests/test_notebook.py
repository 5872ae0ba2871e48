"""``nas_mnist.search`` in a real Jupyter kernel (nbclient): what a notebook user sees."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from support import TINY_SPACE as TINY

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


# What the libraries print at start-up or per trial when nas-mnist does not hide it.
NOISE = {
    "Optuna INFO line": re.compile(r"\[I \d{4}-\d\d-\d\d|A new study created|Trial \d+ finished"),
    "TensorFlow start-up line": re.compile(
        r"oneDNN|cuda|absl::InitializeLog|cpu_feature_guard|This TensorFlow binary|I0000 "),
    "MLflow start-up line": re.compile(
        r"Creating initial MLflow database tables|Updating database tables|alembic"),
    "ipywidgets warning": re.compile(r"ipywidgets"),
    "traceback": re.compile(r"Traceback"),
}


def _kernel_spec(folder: Path) -> str:
    """A kernelspec running this interpreter (the venv's, where nas_mnist and ipykernel are),
    whatever other 'python3' kernels the machine has; returns its name."""
    spec = folder / "kernels" / "nas-mnist-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nas-mnist test", "language": "python"}))
    return spec.name


def _outputs(notebook) -> list[str]:
    """Every output of every code cell as text: streams, displayed or returned values (each
    mime type), and errors (name, value, traceback)."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append(output.text)
            elif output.output_type in ("display_data", "execute_result"):
                texts += [v if isinstance(v, str) else json.dumps(v)
                          for v in output.data.values()]
            elif output.output_type == "error":
                texts.append(f"{output.ename}: {output.evalue}\n" + "\n".join(output.traceback))
    return texts


@pytest.mark.slow
def test_a_notebook_search_prints_no_library_noise(tmp_path, real_mnist_path, monkeypatch):
    # The user's notebook sets nothing: what is hidden, nas-mnist hides itself. ipywidgets is not
    # installed (the test extra leaves it out): rich and tqdm would warn about it. ipykernel passes
    # what the kernel writes to its file descriptors 1 and 2 (TensorFlow's C++ lines) to the cells.
    for name in ("TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL", "KERAS_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    kernel = _kernel_spec(tmp_path / "jupyter")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    search = (f"result = nas_mnist.search(trials=2, epochs=1, max_train_samples=500, "
              f"data={str(real_mnist_path)!r}, space='tiny.yaml', storage='sqlite:///s.db', "
              f"study_name='demo', tracking_uri='sqlite:///mlflow.db', baselines='none')\n"
              "result")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import nas_mnist"),
        nbformat.v4.new_code_cell(search),
        nbformat.v4.new_code_cell("result.leaderboard"),
    ])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name=kernel,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    texts = _outputs(notebook)
    shown = "\n".join(texts)
    for what, pattern in NOISE.items():
        found = pattern.search(shown)
        assert found is None, f"the notebook shows a {what} ({found.group()!r}):\n{shown}"
    assert not [o for c in notebook.cells for o in c.outputs if o.output_type == "error"]
    # No empty outputs (Keras' model summary, drawn by rich for the trial's MLflow artifact,
    # showed one per trial).
    empty = [o for c in notebook.cells for o in c.outputs if o.output_type == "display_data"
             and not o.data.get("text/plain", "").strip()]
    assert not empty, empty
    # The search's result is shown: its one-line repr, then the leaderboard's two trials.
    assert "SearchResult(study 'demo'; 2 finished trials; best trial" in shown, shown
    shown_result = notebook.cells[1].outputs[-1].data  # Jupyter's view: summary and top rows
    assert "best trial" in shown_result["text/html"] and "</table>" in shown_result["text/html"]
    leaderboard = notebook.cells[2].outputs[0].data["text/plain"]
    assert "val_accuracy" in leaderboard and "complete" in leaderboard, leaderboard
