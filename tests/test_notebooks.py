"""The notebooks run: each is executed with small settings (TFDPGEN_NOTEBOOK_SMALL=1), as a user's kernel would."""
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT, SHARED_DATA

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_four_notebooks_stored_without_outputs():
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        assert "TF_USE_LEGACY_KERAS" in code[0].source and "pip" in code[0].source, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path: pathlib.Path, tmp_path, monkeypatch):
    monkeypatch.setenv("TFDPGEN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TFDPGEN_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
              if output.output_type == "error"]
    assert not errors


def test_setup_cell_after_keras_3_says_restart_in_one_line(tmp_path, monkeypatch):
    """On Colab a user may have imported TensorFlow (Keras 3) before the setup cell: one line, no traceback."""
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    setup = [cell for cell in notebook.cells if cell.cell_type == "code"][0]
    notebook.cells = [nbformat.v4.new_code_cell("import tensorflow as tf\ntf.keras.Model"), setup]
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [output for output in notebook.cells[1].outputs if output.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "SetupStop"
    assert len(errors[0].traceback) == 1 and "restart the runtime" in errors[0].traceback[0]
    assert "Traceback" not in errors[0].traceback[0]
