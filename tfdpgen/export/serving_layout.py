"""A trained generator exported into TensorFlow Serving's layout, `BASE/NAME/<version>/`, with warm-up requests.

Versions are integers that only grow: a new export takes the largest existing version + 1 and is written beside it
under a temporary name, then renamed into place, so a server watching BASE/NAME never sees a half-written version and
no existing version is touched.
"""
import os
import shutil

import tensorflow as tf

from tfdpgen.export.saved_model import DEFAULT_MAX_SAMPLES, ExportError, export_sampler

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def versions(model_dir: str):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if name.isdigit())


def write_warmup_requests(export_dir: str, model_name: str, conditional: bool) -> str:
    """TF Serving replays these PredictionLog records when it loads the version, so the first user request does not
    pay for tracing and memory allocation."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = [("serving_default", {"num_samples": tf.make_tensor_proto(1, tf.int32),
                                     "seed": tf.make_tensor_proto(0, tf.int64)})]
    if conditional:
        requests.append(("sample_conditional", {"labels": tf.make_tensor_proto([0], tf.int32),
                                                "seed": tf.make_tensor_proto(0, tf.int64)}))
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for key, proto in inputs.items():
                request.inputs[key].CopyFrom(proto)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def export_version(model, metadata: dict, model_name: str, base_path: str,
                   max_samples: int = DEFAULT_MAX_SAMPLES) -> str:
    """Export `model` (with `metadata`) as the next version of `base_path/model_name`; returns its path."""
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ExportError(f"--model-name must be a plain folder name, got {model_name!r}.")
    if not (isinstance(max_samples, int) and max_samples >= 1):
        raise ExportError(f"--max-samples must be a whole number >= 1, got {max_samples!r}.")
    if os.path.exists(base_path) and not os.path.isdir(base_path):
        raise ExportError(f"--base-path {base_path} is a file: give TF Serving's model base directory (it is made if "
                          "missing).")
    metadata = dict(metadata, max_samples=max_samples, model_name=model_name, tensorflow_version=tf.__version__)
    model_dir = os.path.join(base_path, model_name)
    version = (versions(model_dir) or [0])[-1] + 1
    final = os.path.join(model_dir, str(version))
    partial = os.path.join(model_dir, f".{version}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(model_dir, exist_ok=True)
    try:
        export_sampler(model, partial, max_samples=max_samples, metadata=metadata)
        write_warmup_requests(partial, model_name, model.num_classes is not None)
        if os.path.exists(final):
            raise ExportError(f"{final} appeared while exporting; nothing was overwritten, export again.")
        os.rename(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final
