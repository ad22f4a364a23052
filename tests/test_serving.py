"""Serving: versioned exports, their signatures in plain TensorFlow, and the client against a PredictionService.

TensorFlow Serving's binary cannot be installed here, so the client talks to tfdpgen.serving.local_server: a gRPC
server implementing tensorflow-serving-api's own PredictionService protos (and the REST endpoints) over the export
loaded with plain TensorFlow. Against real TF Serving: serving/README.md.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfdpgen import cli
from tfdpgen.export.serving_layout import WARMUP_FILE
from tfdpgen.runs import export_run
from tfdpgen.serving.client import SamplerClient, ServingError
from tfdpgen.serving.local_server import LocalServer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    made = {}
    for family, epochs in (("cgan", 1), ("tabgan", 1)):
        made[family] = root / family
        assert cli.main(["train", "--model", family, "--epochs", str(epochs), "--output", str(made[family]),
                         "--quiet"]) == 0
    return made


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    export_run(str(runs["cgan"]), "digits", str(base))
    with LocalServer("digits", str(base / "digits"), rest_port=0) as server:
        yield server


def test_export_versions_grow_and_never_overwrite(runs, tmp_path, capsys):
    base = tmp_path / "models"
    first = export_run(str(runs["cgan"]), "digits", str(base))
    marker = os.path.join(first, "untouched")
    open(marker, "w").close()
    assert cli.main(["export", "--run", str(runs["cgan"]), "--model-name", "digits", "--base-path", str(base)]) == 0
    assert capsys.readouterr().out.strip().endswith(os.path.join("digits", "2"))
    assert sorted(os.listdir(base / "digits")) == ["1", "2"] and os.path.exists(marker)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text("{}")  # a run that never finished
    assert cli.main(["export", "--run", str(unfinished), "--model-name", "x", "--base-path", str(base)]) == 2
    assert "not a finished tfdpgen run" in capsys.readouterr().err and not (base / "x").exists()


def test_export_metadata_and_warmup_requests(runs, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2
    path = export_run(str(runs["cgan"]), "digits", str(tmp_path), max_samples=500)
    metadata = json.loads(open(os.path.join(path, "assets", "tfdpgen.json")).read())
    assert metadata["family"] == "cgan" and metadata["max_samples"] == 500 and metadata["num_classes"] == 10
    for field in ("epsilon", "delta", "accountant"):
        assert field in metadata["privacy"]
    assert metadata["tensorflow_version"] == tf.__version__ and metadata["tfdpgen_version"]
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE))]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["serving_default",
                                                                                  "sample_conditional"]
    assert all(log.predict_log.request.model_spec.name == "digits" for log in logs)


PLAIN = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    assert "tfdpgen" not in sys.modules and "tf_keras" not in sys.modules
    loaded = tf.saved_model.load(sys.argv[1])
    saved = tf.train.list_variables(sys.argv[1] + "/variables/variables")
    out = {"variables": sorted([shape for name, shape in saved if name != "_CHECKPOINTABLE_OBJECT_GRAPH"])}
    for name, fn in loaded.signatures.items():
        out[name] = {"inputs": {k: [s.dtype.name, s.shape.as_list()] for k, s in fn.structured_input_signature[1].items()},
                     "outputs": {k: [s.dtype.name, s.shape.as_list()] for k, s in fn.structured_outputs.items()}}
    print(json.dumps(out))
""")


def test_signatures_in_plain_tensorflow_and_saved_model_cli(runs, tmp_path, subprocess_env):
    from tfdpgen.runs import load_trained
    path = export_run(str(runs["tabgan"]), "cancer", str(tmp_path))
    result = subprocess.run([sys.executable, "-c", PLAIN, path], env=subprocess_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    model, metadata = load_trained(str(runs["tabgan"]))
    # only the exported generator's (the moving average): not the trained one's, the discriminator's, the optimizers'
    assert out["variables"] == sorted([list(v.shape) for v in model.average_generator.variables])
    columns = [c["name"] for c in metadata["schema"]["columns"]]
    assert out["serving_default"]["inputs"] == {"num_samples": ["int32", []], "seed": ["int64", []]}
    assert out["sample_conditional"]["inputs"] == {"labels": ["int32", [None]], "seed": ["int64", []]}
    for signature in ("serving_default", "sample_conditional"):
        assert sorted(out[signature]["outputs"]) == sorted(columns)
    assert out["serving_default"]["outputs"]["diagnosis"] == ["string", [None]]
    assert out["serving_default"]["outputs"]["mean_radius"] == ["float32", [None]]
    cli_tool = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli_tool, "show", "--all", "--dir", path], env=subprocess_env, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['sample_conditional']", "num_samples", "labels",
                 "outputs['diagnosis']"):
        assert text in shown.stdout, text


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_client_samples_through_the_prediction_service(served, protocol):
    port = served.port if protocol == "grpc" else served.rest_port
    client = SamplerClient(f"127.0.0.1:{port}", "digits", protocol)
    first, again, other = client.sample(5, seed=3), client.sample(5, seed=3), client.sample(5, seed=4)
    assert first["samples"].shape == (5, 8, 8, 1) and first["samples"].dtype == np.float32
    np.testing.assert_array_equal(first["samples"], again["samples"])
    assert not np.array_equal(first["samples"], other["samples"])
    assert client.sample(seed=1, labels=[0, 9, 3])["samples"].shape == (3, 8, 8, 1)
    metadata = client.metadata()
    assert metadata["serving_default"] == {"inputs": ["num_samples", "seed"], "outputs": ["samples"]}
    assert metadata["sample_conditional"] == {"inputs": ["labels", "seed"], "outputs": ["samples"]}


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_bad_requests_are_invalid_argument_and_the_server_keeps_serving(served, protocol):
    port = served.port if protocol == "grpc" else served.rest_port
    client = SamplerClient(f"127.0.0.1:{port}", "digits", protocol)
    invalid = "INVALID_ARGUMENT" if protocol == "grpc" else "HTTP 400"
    cases = [(lambda: client.sample(10_001), "max_samples=10000"),
             (lambda: client.sample(-1), "at least 1"),
             (lambda: client.sample(seed=0, labels=[0, 10]), "num_classes=10"),
             (lambda: client.sample(seed=0, labels=[-1]), "labels must be in [0, num_classes)")]
    if protocol == "grpc":  # JSON numbers carry no dtype; over gRPC a float count is a wrong dtype
        cases.append((lambda: client.predict("serving_default", {"num_samples": np.float32(3), "seed": np.int64(0)}),
                      "to be int32 but float"))
    for call, message in cases:
        with pytest.raises(ServingError) as error:
            call()
        assert error.value.code == invalid and message in error.value.message, error.value
    assert client.sample(2, seed=0)["samples"].shape == (2, 8, 8, 1)


def test_sample_command_local_and_through_a_server(runs, served, tmp_path, capsys):
    assert cli.main(["sample", "--run", str(runs["tabgan"]), "-n", "5", "--out", str(tmp_path / "rows.csv")]) == 0
    rows = (tmp_path / "rows.csv").read_text().splitlines()
    metadata = json.loads((runs["tabgan"] / "saved_model" / "1" / "assets" / "tfdpgen.json").read_text())
    assert rows[0].split(",") == [c["name"] for c in metadata["schema"]["columns"]] and len(rows) == 6
    assert cli.main(["sample", "--server", f"127.0.0.1:{served.port}", "--model-name", "digits", "--labels", "1", "2",
                     "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (2, 8, 8, 1)
    # one label and -n: that many of its class (bug caught: -n was dropped and one sample written)
    assert cli.main(["sample", "--server", f"127.0.0.1:{served.port}", "--model-name", "digits", "--labels", "3",
                     "-n", "5", "--out", str(tmp_path / "threes.npy")]) == 0
    assert np.load(tmp_path / "threes.npy").shape == (5, 8, 8, 1)
    assert cli.main(["sample", "--server", f"127.0.0.1:{served.rest_port}", "--rest", "--model-name", "digits",
                     "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert cli.main(["sample", "--server", f"127.0.0.1:{served.port}", "--model-name", "nope", "-n", "2"]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
