"""Samples per second of an exported generator: from the SavedModel loaded in-process, and through gRPC.

    .venv/bin/python benchmarks/serving_throughput.py [--run DIR] [--requests 200] [--clients 8]

Without --run, trains a small DP-VAE on scikit-learn's digits first (a minute). Direct: the SavedModel loaded with
plain tf.saved_model.load, serving_default for n = 1, 64, 1024 (median of 20 calls after a warm-up). gRPC: the
export behind tfdpgen's local PredictionService (tensorflow-serving-api's protos; TensorFlow Serving itself cannot be
installed here), `--clients` threads each sending `--requests` Predict requests of n = 64, each reply checked against
the direct result for its seed. Writes benchmarks/results/serving_throughput.json.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tfdpgen  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdpgen import cli  # noqa: E402
from tfdpgen.runs import export_run  # noqa: E402
from tfdpgen.serving.client import SamplerClient  # noqa: E402
from tfdpgen.serving.local_server import LocalServer  # noqa: E402


def direct(export_dir, sizes, repeats=20):
    fn = tf.saved_model.load(export_dir).signatures["serving_default"]
    results = {}
    for n in sizes:
        call = lambda seed: fn(num_samples=tf.constant(n, tf.int32), seed=tf.constant(seed, tf.int64))  # noqa: E731
        call(0)
        times = []
        for seed in range(repeats):
            start = time.perf_counter()
            call(seed)["samples"].numpy()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        results[n] = {"median_seconds": median, "samples_per_second": n / median}
        print(f"direct   n={n:5d}: {n / median:12,.0f} samples/s ({median * 1e3:.2f} ms per call)", flush=True)
    return results


def through_grpc(export_dir, base, clients, requests, n=64):
    fn = tf.saved_model.load(export_dir).signatures["serving_default"]
    expected = {seed: fn(num_samples=tf.constant(n, tf.int32), seed=tf.constant(seed, tf.int64))["samples"].numpy()
                for seed in range(16)}
    latencies, failures = [], []
    lock = threading.Lock()

    def worker(index, port):
        client = SamplerClient(f"127.0.0.1:{port}", "bench")
        for i in range(requests):
            seed = (index * requests + i) % 16
            start = time.perf_counter()
            try:
                samples = client.sample(n, seed=seed)["samples"]
                ok = samples.shape == expected[seed].shape and np.array_equal(samples, expected[seed])
            except Exception as error:  # every failure is counted and reported
                ok, samples = False, error
            with lock:
                latencies.append(time.perf_counter() - start)
                if not ok:
                    failures.append(repr(samples)[:200])

    with LocalServer("bench", base, workers=clients) as server:
        SamplerClient(f"127.0.0.1:{server.port}", "bench").sample(n, seed=0)  # warm-up
        threads = [threading.Thread(target=worker, args=(i, server.port)) for i in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    total = clients * requests
    result = {"clients": clients, "requests_per_client": requests, "samples_per_request": n, "requests": total,
              "failed": len(failures), "failures": failures[:5], "wall_seconds": wall,
              "requests_per_second": total / wall, "samples_per_second": total * n / wall,
              "latency_ms_p50": 1e3 * float(np.percentile(latencies, 50)),
              "latency_ms_p99": 1e3 * float(np.percentile(latencies, 99))}
    print(f"gRPC     {clients} clients x {requests} requests of n={n}: {result['requests_per_second']:,.0f} "
          f"requests/s, {result['samples_per_second']:,.0f} samples/s, latency p50 {result['latency_ms_p50']:.1f} ms "
          f"p99 {result['latency_ms_p99']:.1f} ms, {len(failures)} failed of {total}", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a finished run (default: train a small DP-VAE on digits first)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "serving_throughput.json"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfdpgen-serving-")
    run = args.run
    if run is None:
        run = os.path.join(work, "run")
        assert cli.main(["train", "--epochs", "5", "--output", run, "--quiet"]) == 0
    base = os.path.join(work, "models")
    export_dir = export_run(run, "bench", base)
    with open(os.path.join(export_dir, "assets", "tfdpgen.json")) as f:
        metadata = json.load(f)
    summary = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "tensorflow": tf.__version__,
                           "tfdpgen": tfdpgen.__version__},
               "command": " ".join(["benchmarks/serving_throughput.py"] + sys.argv[1:]),
               "model": {"family": metadata["family"], "dataset": metadata["dataset"],
                         "shape": metadata.get("image_shape")},
               "server": "tfdpgen.serving.local_server (tensorflow-serving-api PredictionService over "
                         "tf.saved_model.load); not TensorFlow Serving's C++ server",
               "direct": direct(export_dir, [1, 64, 1024]),
               "grpc": through_grpc(export_dir, os.path.join(base, "bench"), args.clients, args.requests)}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {args.output}")
    if summary["grpc"]["failed"]:
        sys.exit("some gRPC replies were wrong or failed: see the JSON")


if __name__ == "__main__":
    main()
