"""The notebooks run: each is executed with small settings (TFDPGEN_NOTEBOOK_SMALL=1), as a user's kernel would."""
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT, SHARED_DATA

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_four_notebooks_stored_without_outputs():
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04"]
    assert set(CLAIMS) == {path.stem for path in NOTEBOOKS}  # every notebook's claims are checked
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        assert "pip_install" in code[0].source, path.name
        assert not any("TF_USE_LEGACY_KERAS" in cell.source for cell in code), path.name  # no switch, no restart


def at_most_3(value: str) -> bool:
    return float(value) <= 3.0


# What each notebook tells its reader, as a pattern in its printed output and a check of what the pattern captures:
# a notebook that runs but prints "gRPC and REST agree: False", or spends more than its epsilon 3, fails.
CLAIMS = {
    "01_quickstart_dp_vae": [(r'"epsilon": ([0-9.]+)', at_most_3), (r"digits \(1797, 8, 8, 1\)", None),
                             (r"image/png", None)],
    "02_private_tabular_data": [(r"spent epsilon=([0-9.]+) at delta=1e-05", at_most_3),
                                (r"logistic_regression +synthetic: \{'accuracy': [0-9.]+, 'roc_auc': [0-9.]+\} +"
                                 r"real: \{'accuracy': 0\.9", None),
                                (r"gradient_boosting +synthetic: \{'accuracy': [0-9.]+, 'roc_auc': [0-9.]+\} +"
                                 r"real: \{'accuracy': 0\.9", None),
                                (r"image/png", None)],
    "03_training_to_serving": [(r"serving_default", None), (r"gRPC and REST agree: (\w+)", lambda v: v == "True"),
                               (r"refused: INVALID_ARGUMENT", None), (r"image/png", None)],
    "04_distribution_and_dp2": [(r"replicas: 2 \| epsilon: ([0-9.]+)", at_most_3),
                                (r"DP-Adam, fixed clip .* epsilon ([0-9.]+)", at_most_3),
                                (r"DP-Adam, adaptive clip .* epsilon ([0-9.]+)", at_most_3),
                                (r"DP\^2-RMSProp .* epsilon ([0-9.]+)", at_most_3), (r"image/png", None)],
}


def printed(notebook) -> str:
    """Everything the executed notebook shows: streams, results' text, and the kinds of the pictures."""
    shown = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            shown.append(output.get("text", ""))
            for kind, value in output.get("data", {}).items():
                shown.append(value if kind == "text/plain" else kind)
    return "\n".join(shown)


# A Colab user's first cell, before the notebook's own: TensorFlow imported, and Keras 3 at work through tf.keras.
KERAS_3_FIRST = ("import tensorflow as tf\nassert not tf.keras.__name__.startswith('tf_keras')\n"
                 "tf.keras.layers.Dense(2)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_and_shows_what_it_says(path: pathlib.Path, tmp_path, monkeypatch):
    """Every cell runs (a cell's error stops execute() with CellExecutionError), after a first cell that put Keras 3
    behind tf.keras (bug caught: tfdpgen stopped with KerasVersionError and asked for a restart), and every claim in
    CLAIMS is printed with the value it should have."""
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.setenv("TFDPGEN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TFDPGEN_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as on Colab
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(KERAS_3_FIRST))
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    output = printed(notebook)
    for pattern, check in CLAIMS[path.stem]:
        found = re.search(pattern, output)
        assert found, f"{path.name} does not show {pattern!r}:\n{output[-3000:]}"
        assert check is None or check(found.group(1)), f"{path.name}: {found.group(0)}"
