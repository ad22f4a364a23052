"""A stand-in for TensorFlow Serving, for development and tests where its server binary cannot be installed.

It implements tensorflow-serving-api's own `PredictionService` (Predict, GetModelMetadata) over gRPC, and the REST
`:predict` and `/metadata` endpoints, for one model: the newest version under `BASE/NAME/` (or one export directory),
loaded with plain `tf.saved_model.load`. Errors come back as TF Serving reports them: a request the signature rejects
(wrong inputs or dtypes, or an in-graph check such as `num_samples` above `max_samples`) is INVALID_ARGUMENT / HTTP
400 with the message, and the server keeps serving. Production: TensorFlow Serving itself (serving/README.md).
"""
import json
import os
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from tfdpgen.export.serving_layout import versions


class RequestError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class ServedModel:
    """One SavedModel and what answering requests for it takes."""

    def __init__(self, name: str, path: str):
        found = versions(path)
        self.version = found[-1] if found else 1
        self.export_dir = os.path.join(path, str(self.version)) if found else path
        if not os.path.exists(os.path.join(self.export_dir, "saved_model.pb")):
            raise ValueError(f"--path {path} holds no SavedModel: give BASE/NAME (numbered versions inside, as "
                             "`tfdpgen export` writes) or one export directory.")
        self.name = name
        self.loaded = tf.saved_model.load(self.export_dir)
        with open(os.path.join(self.export_dir, "saved_model.pb"), "rb") as f:
            self.signature_defs = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].signature_def

    def check_spec(self, name, version=None):
        if name != self.name:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        if version is not None and version != self.version:
            raise RequestError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({name}, {version})")

    def predict(self, signature: str, inputs: dict) -> dict:
        """inputs: name -> numpy array; returns name -> numpy array."""
        signature = signature or "serving_default"
        if signature not in self.loaded.signatures:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Serving signature name: \"{signature}\" not found in signature def")
        function = self.loaded.signatures[signature]
        specs = function.structured_input_signature[1]
        if set(inputs) != set(specs):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{signature} takes inputs {sorted(specs)}, got {sorted(inputs)}")
        arguments = {}
        for name, spec in specs.items():
            value = np.asarray(inputs[name])
            if tf.as_dtype(value.dtype) != spec.dtype and not (value.size == 0 and value.dtype == np.float64):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Expects arg {name} to be {spec.dtype.name} but {value.dtype.name} is provided")
            if not spec.shape.is_compatible_with(value.shape):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {name} must have shape {spec.shape}, got {list(value.shape)}")
            arguments[name] = tf.constant(value, spec.dtype)
        try:
            outputs = function(**arguments)
        except tf.errors.InvalidArgumentError as error:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, error.message) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model: ServedModel):
        self.model = model

    def Predict(self, request, context):
        try:
            spec = request.model_spec
            self.model.check_spec(spec.name, spec.version.value if spec.HasField("version") else None)
            outputs = self.model.predict(spec.signature_name,
                                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except RequestError as error:
            context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = self.model.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            self.model.check_spec(request.model_spec.name)
        except RequestError as error:
            context.abort(error.code, error.message)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def is the only one served")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = self.model.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, definition in self.model.signature_defs.items():
            signatures.signature_def[name].CopyFrom(definition)
        response.metadata["signature_def"].Pack(signatures)
        return response


def rest_handler(model: ServedModel):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def parse_path(self, suffix):
            path = self.path.split("?")[0]
            prefix = "/v1/models/"
            if not path.startswith(prefix) or not path.endswith(suffix):
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"no endpoint {path}")
            parts = path[len(prefix):len(path) - len(suffix)].split("/versions/")
            model.check_spec(parts[0], int(parts[1]) if len(parts) > 1 else None)

        def do_GET(self):
            try:
                self.parse_path("/metadata")
            except (RequestError, ValueError) as error:
                return self.reply(404, {"error": getattr(error, "message", str(error))})
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for name, definition in model.signature_defs.items():
                signatures.signature_def[name].CopyFrom(definition)
            self.reply(200, {"model_spec": {"name": model.name, "version": str(model.version)},
                             "metadata": {"signature_def": json_format.MessageToDict(
                                 signatures, preserving_proto_field_name=True)}})

        def do_POST(self):
            try:
                self.parse_path(":predict")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if "inputs" not in body:
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                       'use the columnar form {"inputs": {...}}: the row form "instances" needs a '
                                       "shared batch dimension, which num_samples and seed do not have")
                signature = body.get("signature_name", "serving_default")
                specs = model.loaded.signatures[signature].structured_input_signature[1] if (
                    signature in model.loaded.signatures) else {}
                inputs = {}
                for name, value in body["inputs"].items():
                    array = np.asarray(value)
                    if name in specs and array.dtype.kind in "iu" and specs[name].dtype.is_integer:
                        array = array.astype(specs[name].dtype.as_numpy_dtype)  # JSON numbers carry no width
                    inputs[name] = array
                outputs = model.predict(signature, inputs)
            except RequestError as error:
                status = 404 if error.code == grpc.StatusCode.NOT_FOUND else 400
                return self.reply(status, {"error": error.message})
            except (ValueError, TypeError) as error:
                return self.reply(400, {"error": str(error)})
            values = {name: np.char.decode(v).tolist() if v.dtype.kind == "S" else v.tolist()
                      for name, v in outputs.items()}
            self.reply(200, {"outputs": values if len(values) > 1 else next(iter(values.values()))})

    return Handler


class LocalServer:
    """gRPC on `port` and, if given, REST on `rest_port` (0 picks free ports; see .port and .rest_port)."""

    def __init__(self, model_name: str, path: str, port: int = 0, rest_port: int = None, workers: int = 8):
        self.model = ServedModel(model_name, path)
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(self.model),
                                                                          self.grpc_server)
        self.port = self.grpc_server.add_insecure_port(f"127.0.0.1:{port}")
        self.http = None
        if rest_port is not None:
            self.http = ThreadingHTTPServer(("127.0.0.1", rest_port), rest_handler(self.model))
            self.rest_port = self.http.server_address[1]

    def start(self) -> "LocalServer":
        self.grpc_server.start()
        if self.http is not None:
            threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.grpc_server.stop(grace=None)
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
