"""A client for generators served by TensorFlow Serving: gRPC (tensorflow-serving-api's PredictionService) or REST.

    client = SamplerClient("localhost:8500", "digits")                # gRPC
    client = SamplerClient("localhost:8501", "digits", protocol="rest")
    samples = client.sample(16, seed=7)                               # {"samples": array} or one array per column
    samples = client.sample(seed=7, labels=[0, 1, 2])                 # conditional families
    client.metadata()                                                 # {signature name: {"inputs": ..., "outputs": ...}}
"""
import json
import urllib.error
import urllib.request

import numpy as np

PROTOCOLS = ("grpc", "rest")


class ServingError(RuntimeError):
    """The server refused or failed a request; the message is the server's."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class SamplerClient:
    def __init__(self, server: str, model_name: str, protocol: str = "grpc", version: int = None,
                 timeout: float = 60.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
        self.server, self.model_name, self.protocol = server, model_name, protocol
        self.version, self.timeout = version, timeout
        self._stub = None

    def sample(self, num_samples: int = None, seed: int = 0, labels=None) -> dict:
        """`num_samples` samples from serving_default, or one per entry of `labels` from sample_conditional."""
        if labels is not None:
            labels = np.asarray(labels, np.int32).reshape(-1)
            if num_samples is not None and num_samples != len(labels):
                raise ValueError(f"num_samples={num_samples} but {len(labels)} labels: give one label per sample.")
            return self.predict("sample_conditional", {"labels": labels, "seed": np.int64(seed)})
        if num_samples is None:
            raise ValueError("give num_samples, or labels for a conditional model.")
        return self.predict("serving_default", {"num_samples": np.int32(num_samples), "seed": np.int64(seed)})

    def predict(self, signature: str, inputs: dict) -> dict:
        return self._grpc_predict(signature, inputs) if self.protocol == "grpc" else self._rest_predict(signature, inputs)

    def metadata(self) -> dict:
        return self._grpc_metadata() if self.protocol == "grpc" else self._rest_metadata()

    # gRPC
    def stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
            channel = grpc.insecure_channel(self.server, options=[("grpc.max_receive_message_length", 1 << 30)])
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return self._stub

    def _model_spec(self, spec, signature=None):
        spec.name = self.model_name
        if signature:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = self.version

    def _grpc_call(self, method, request):
        import grpc
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                raise ServingError("UNAVAILABLE", f"cannot reach {self.server} ({error.details()}): start the server "
                                   "(TF Serving, or `tfdpgen serve`) or check --server HOST:PORT") from None
            raise ServingError(error.code().name, error.details()) from None

    def _grpc_predict(self, signature, inputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._grpc_call(self.stub().Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def _grpc_metadata(self):
        from tensorflow_serving.apis import get_model_metadata_pb2
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._grpc_call(self.stub().GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {name: {"inputs": sorted(sig.inputs), "outputs": sorted(sig.outputs)}
                for name, sig in signatures.signature_def.items() if not name.startswith("__")}

    # REST
    def _url(self, suffix=""):
        version = "" if self.version is None else f"/versions/{self.version}"
        return f"http://{self.server}/v1/models/{self.model_name}{version}{suffix}"

    def _rest(self, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                message = error.reason
            raise ServingError(f"HTTP {error.code}", message) from None
        except urllib.error.URLError as error:
            raise ServingError("UNAVAILABLE", f"cannot reach {url} ({error.reason}): start the server (TF Serving, "
                               "or `tfdpgen serve`) or check --server HOST:PORT (the REST port with --rest)") from None

    def _rest_predict(self, signature, inputs):
        body = {"signature_name": signature, "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        outputs = self._rest(self._url(":predict"), body)["outputs"]
        # TF Serving names the outputs only when there are several; ours then is "samples".
        return {k: np.asarray(v) for k, v in outputs.items()} if isinstance(outputs, dict) else {
            "samples": np.asarray(outputs, np.float32)}

    def _rest_metadata(self):
        signatures = self._rest(self._url("/metadata"))["metadata"]["signature_def"]["signature_def"]
        return {name: {"inputs": sorted(sig.get("inputs", {})), "outputs": sorted(sig.get("outputs", {}))}
                for name, sig in signatures.items() if not name.startswith("__")}
