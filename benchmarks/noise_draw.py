"""Milliseconds to draw the DP step's Gaussian noise: tfdpgen's Box-Muller draw against TensorFlow's stateless normal.

    .venv/bin/python benchmarks/noise_draw.py [--counts 20490 86433 269322 669706]

The counts are the trained parameters of dp_step_speed's models (small CNN, DP-VAE, DCGAN discriminator, MLP). Each
draw is a compiled tf.function, median of 5 windows of 20 calls after a warm-up. Writes
benchmarks/results/noise_draw.json.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tensorflow as tf  # noqa: E402

from tfdpgen.privacy.noise import standard_normal  # noqa: E402


def milliseconds(draw, seed):
    draw(seed).numpy()
    windows = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            values = draw(seed)
        values.numpy()
        windows.append((time.perf_counter() - start) / 20 * 1e3)
    return statistics.median(windows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[20490, 86433, 269322, 669706])
    args = parser.parse_args()
    seed = tf.constant([1, 2], tf.int64)
    results = []
    for count in args.counts:
        ours = milliseconds(tf.function(lambda s, n=count: standard_normal(n, s)), seed)
        theirs = milliseconds(tf.function(lambda s, n=count: tf.random.stateless_normal([n], s, alg="philox")), seed)
        results.append({"count": count, "tfdpgen_ms": ours, "tf_stateless_normal_ms": theirs})
        print(f"{count:>9,} values: tfdpgen {ours:.2f} ms, tf.random.stateless_normal {theirs:.2f} ms "
              f"({theirs / ours:.2f}x)", flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "noise_draw.json")
    with open(path, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                   "command": " ".join(sys.argv), "results": results}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
