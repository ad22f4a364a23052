"""Small deterministic models for statistical tests of the DP step, and the mark for tests that need TF Privacy."""
import gzip
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from scipy import stats

from tfdpgen._compat import TF_PRIVACY_INSTALL, has_tf_privacy
from tfdpgen.models.base import DPGenerativeModel

# TF Privacy is a dependency on Python < 3.12 and an addition by hand above (README): tests of the vectorized reference
# engine and of TF Privacy's statement run where it is installed (both CI environments), and skip with this reason.
requires_tf_privacy = pytest.mark.skipif(
    not has_tf_privacy(), reason=f"TensorFlow Privacy is not installed (add it: {TF_PRIVACY_INSTALL})")


class LinearToy(DPGenerativeModel):
    """A one-layer 'generator' whose per-example loss is 0.5 * ||W x - t||^2 (no randomness inside a step)."""

    def __init__(self, inputs, outputs, zero_init=False):
        super().__init__(latent_dim=inputs)
        init = "zeros" if zero_init else keras.initializers.RandomNormal(seed=1)
        self.net = keras.layers.Dense(outputs, use_bias=False, kernel_initializer=init)
        self.net.build((None, inputs))

    private_networks = property(lambda self: [self.net])
    generator_networks = property(lambda self: [self.net])

    def per_example_terms(self, x, y, training):
        return {"loss": 0.5 * tf.reduce_sum(tf.square(self.run(self.net, x) - y), axis=1)}


def has_scale(noise, stddev, tolerance=0.03) -> bool:
    """Whether the values `noise` (thousands of them, centred) have standard deviation `stddev` within `tolerance`.
    A test asserts it of the measured draw and refutes it of the draw scaled by 1.1 and by 1/1.1, so that the
    tolerance is shown to tell a 10% error of the noise scale apart."""
    noise = np.asarray(noise, np.float64).ravel()
    return abs(noise.std() / stddev - 1) < tolerance and abs(noise.mean()) < 5 * stddev / np.sqrt(noise.size)


def assert_scale(noise, stddev, tolerance=0.03):
    """The draw has the scale `stddev`, and 10% more or less noise would have failed the same check."""
    noise = np.asarray(noise, np.float64)
    assert has_scale(noise, stddev, tolerance), (float(np.std(noise)), stddev)
    assert not has_scale(1.1 * noise, stddev, tolerance) and not has_scale(noise / 1.1, stddev, tolerance)


def analytic_gaussian_epsilon(noise_multiplier, delta):
    """The exact epsilon of one Gaussian mechanism (Balle and Wang 2018, Thm. 8), by bisection on
    delta(eps) = Phi(1/(2z) - eps z) - e^eps Phi(-1/(2z) - eps z): independent of dp_accounting."""
    z = noise_multiplier

    def delta_at(eps):
        return stats.norm.cdf(1 / (2 * z) - eps * z) - math.exp(eps) * stats.norm.cdf(-1 / (2 * z) - eps * z)

    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if delta_at(mid) <= delta else (mid, hi)
    return hi


def write_idx(path, array):
    """`array` as an unsigned-byte IDX file (MNIST's format), gzipped."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.asarray(array).astype(np.uint8).tobytes())


def documented_keys() -> set:
    """The keys docs/privacy.md's table of published numbers names (backticked, in its first column)."""
    import os
    import re
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "privacy.md")) as f:
        section = f.read().split("## Every number a run publishes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_0-9]+)`", row)}


def assert_published_keys_documented(run_dir) -> None:
    """Every key of the run's run.json, split.json, privacy.json and export metadata (and of the dicts they nest,
    the schema's and network config's excepted) is named in docs/privacy.md's table."""
    import json
    import os
    files = ["run.json", "split.json", "privacy.json", os.path.join("saved_model", "1", "assets", "tfdpgen.json")]
    found = set()

    def walk(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                found.add(key)
                if key not in ("schema", "config", "network"):
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for name in files:
        with open(os.path.join(str(run_dir), name)) as f:
            walk(json.load(f))
    missing = found - documented_keys()
    assert not missing, f"docs/privacy.md's table of published numbers does not name {sorted(missing)}"
