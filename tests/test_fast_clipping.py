"""The fast engine's clipped sums equal TensorFlow Privacy's vectorized reference for every supported layer type."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen.models.base import DPGenerativeModel
from tfdpgen.privacy.clipping import norms as clipping_norms
from tfdpgen.privacy.clipping.fast import Recorder
from toys import requires_tf_privacy

L = keras.layers


class Probe(DPGenerativeModel):
    def __init__(self, network):
        super().__init__(latent_dim=1)
        self.network = network

    private_networks = property(lambda self: [self.network])
    generator_networks = property(lambda self: [self.network])

    def per_example_terms(self, x, y, training):
        out = self.run(self.network, x, training)
        weights = tf.reshape(tf.range(1, tf.size(out[0]) + 1, dtype=tf.float32) % 7 - 3, tf.shape(out)[1:])
        return {"loss": 0.5 * tf.reduce_sum(tf.reshape(tf.square(tf.tanh(out) * weights), [tf.shape(out)[0], -1]), 1)}


def shared_dense_network():
    inner = L.Dense(6, activation="tanh")
    return keras.Sequential([L.InputLayer(input_shape=(6,)), inner, inner, L.Dense(3)])


CASES = {
    "dense": (lambda: keras.Sequential([L.InputLayer(input_shape=(7,)), L.Dense(5, activation="relu"),
                                          L.Dense(3)]), (7,), "float"),
    "dense_sequence": (lambda: keras.Sequential([L.InputLayer(input_shape=(4, 6)), L.Dense(5, activation="elu"),
                                                   L.Dense(2, use_bias=False)]), (4, 6), "float"),
    "conv1d": (lambda: keras.Sequential([L.InputLayer(input_shape=(12, 3)),
                                           L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
                                           L.Conv1D(2, 3, strides=2)]), (12, 3), "float"),
    "conv2d": (lambda: keras.Sequential([L.InputLayer(input_shape=(9, 9, 2)),
                                           L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                                           L.Conv2D(3, 2, dilation_rate=2), L.Flatten(), L.Dense(2)]), (9, 9, 2),
               "float"),
    "conv2d_draws": (lambda: keras.Sequential([L.InputLayer(input_shape=(3, 6, 6, 2)),
                                                 L.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                                                 L.Conv2D(2, 3, padding="same")]), (3, 6, 6, 2), "float"),
    "conv2d_many_channels": (lambda: keras.Sequential([L.InputLayer(input_shape=(8, 8, 9)),
                                                         L.Conv2D(5, 3, strides=2, padding="same", activation="relu"),
                                                         L.Conv2D(4, 3, padding="valid")]), (8, 8, 9), "float"),
    "conv2d_wide_patches": (lambda: keras.Sequential([L.InputLayer(input_shape=(6, 6, 70)),
                                                        L.Conv2D(3, 3, strides=2, padding="same")]), (6, 6, 70), "float"),
    "conv2d_transpose_wide_patches": (lambda: keras.Sequential([L.InputLayer(input_shape=(2, 2, 3)),
                                                                  L.Conv2DTranspose(70, 3, strides=2)]),
                                      (2, 2, 3), "float"),
    "conv2d_transpose_many_channels": (lambda: keras.Sequential([L.InputLayer(input_shape=(3, 3, 4)),
                                                                   L.Conv2DTranspose(10, 3, strides=2, padding="same")]),
                                       (3, 3, 4), "float"),
    "conv2d_transpose": (lambda: keras.Sequential([L.InputLayer(input_shape=(4, 4, 3)),
                                                     L.Conv2DTranspose(4, 3, strides=2, padding="same",
                                                                       activation="relu"),
                                                     L.Conv2DTranspose(2, 3, strides=2, padding="valid")]),
                         (4, 4, 3), "float"),
    "embedding": (lambda: keras.Sequential([L.InputLayer(input_shape=(6,), dtype="int32"), L.Embedding(5, 4),
                                              L.Dense(3)]), (6,), "ids"),
    "layer_norm": (lambda: keras.Sequential([L.InputLayer(input_shape=(3, 8)), L.Dense(8),
                                               L.LayerNormalization(), L.Dense(2)]), (3, 8), "float"),
    "fallback_prelu": (lambda: keras.Sequential([L.InputLayer(input_shape=(5,)), L.Dense(4), L.PReLU(),
                                                   L.Dense(2)]), (5,), "float"),
    "fallback_shared_layer": (shared_dense_network, (6,), "float"),
}


def clipped_sums(engine, network, x, clip, scales=None, in_chunks=False):
    """The engine's clipped sums; `in_chunks`: traced with an unknown batch size ("xla": compiled with XLA, which
    needs the batch size) and chunks of 1-3 examples, so every layer takes its chunked path."""
    model = Probe(network)
    settings = tfdpgen.PrivacySettings(dataset_size=1000, batch_size=len(x), epochs=1, l2_norm_clip=clip,
                                       noise_multiplier=1.0)
    model.compile(privacy=settings, optimizer="sgd", engine=engine)

    def run(x):
        recorder = Recorder() if engine == "fast" else None
        with tf.GradientTape(persistent=True) as tape:
            model.recorder = recorder
            loss = model.per_example_terms(x, None, True)["loss"]
            model.recorder = None
        return model.clipping.clipped_sums(tape, loss, network.trainable_variables, recorder, clip, scales)[0]

    if in_chunks == "xla":
        run = tf.function(run, jit_compile=True)
    elif in_chunks:
        spec = tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype))
        run = tf.function(run, input_signature=[spec])
    return [np.asarray(g) for g in run(x)]


def per_example_floats(network):
    return max(v.shape.num_elements() for v in network.trainable_variables)


@pytest.mark.parametrize("in_chunks", [False, True, "xla"], ids=["whole_batch", "in_chunks", "in_chunks_xla"])
@pytest.mark.parametrize("case", sorted(CASES))
@requires_tf_privacy
def test_fast_clipped_sum_equals_vectorized_reference(case, in_chunks, monkeypatch):
    make, shape, kind = CASES[case]
    keras.utils.set_random_seed(0)
    network = make()
    rng = np.random.default_rng(1)
    batch = 12
    x = (rng.integers(0, 5, size=(batch, *shape)).astype("int32") if kind == "ids" else
         (rng.normal(size=(batch, *shape)) * rng.uniform(0.2, 2.0, size=(batch,) + (1,) * len(shape))).astype("float32"))
    with tf.GradientTape() as tape:
        loss = Probe(network).per_example_terms(x, None, True)["loss"]
    jacobians = tape.jacobian(loss, network.trainable_variables)
    norms = np.sqrt(sum(np.sum(np.reshape(j, (batch, -1)) ** 2, axis=1) for j in jacobians))
    clip = float(np.median(norms))  # half the examples are clipped, half are not
    if in_chunks:
        monkeypatch.setattr(clipping_norms, "CHUNK_FLOATS", 2 * per_example_floats(network))
    fast = clipped_sums("fast", network, x, clip, in_chunks=in_chunks)
    reference = clipped_sums("vectorized", network, x, clip)
    for a, b in zip(fast, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
    unclipped = [np.sum(j, axis=0) for j in jacobians]
    assert not all(np.allclose(a, b, rtol=1e-3) for a, b in zip(fast, unclipped))


@pytest.mark.parametrize("in_chunks", [False, True], ids=["whole_batch", "in_chunks"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_preconditioned_clipped_sum_equals_per_example_reference(case, in_chunks, monkeypatch):
    """DP^2's adaptive step: each per-example gradient times per-coordinate scales, then clipped; checked against
    per-example Jacobians scaled and clipped in NumPy."""
    make, shape, kind = CASES[case]
    keras.utils.set_random_seed(0)
    network = make()
    rng = np.random.default_rng(3)
    batch = 12
    x = (rng.integers(0, 5, size=(batch, *shape)).astype("int32") if kind == "ids" else
         (rng.normal(size=(batch, *shape)) * rng.uniform(0.2, 2.0, size=(batch,) + (1,) * len(shape))).astype("float32"))
    scales = [rng.uniform(0.1, 10.0, size=v.shape).astype("float32") for v in network.trainable_variables]
    with tf.GradientTape() as tape:
        loss = Probe(network).per_example_terms(x, None, True)["loss"]
    scaled = [np.asarray(j) * s for j, s in zip(tape.jacobian(loss, network.trainable_variables), scales)]
    norms = np.sqrt(sum(np.sum(np.reshape(j, (batch, -1)) ** 2, axis=1) for j in scaled))
    clip = float(np.median(norms))
    factor = np.minimum(1.0, clip / norms)
    reference = [np.tensordot(factor, j, axes=[[0], [0]]) for j in scaled]
    if in_chunks:
        monkeypatch.setattr(clipping_norms, "CHUNK_FLOATS", 2 * per_example_floats(network))
    fast = clipped_sums("fast", network, x, clip, [tf.constant(s) for s in scales], in_chunks)
    for a, b in zip(fast, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())


class TwiceProbe(Probe):
    """Runs its network twice in the loss: the recorded layers then have cross terms between the two calls."""

    def per_example_terms(self, x, y, training):
        first = self.run(self.network, x, training)
        second = self.run(self.network, x * 0.5, training)
        return {"loss": tf.reduce_sum(tf.square(first + 2.0 * second), axis=1)}


@requires_tf_privacy
def test_network_run_twice_in_one_loss_is_run_again_per_example():
    keras.utils.set_random_seed(0)
    network = keras.Sequential([L.InputLayer(input_shape=(5,)), L.Dense(4, activation="tanh"), L.Dense(3)])
    x = np.random.default_rng(2).normal(size=(10, 5)).astype("float32") * 2
    sums = {}
    for engine in ("fast", "vectorized"):
        model = TwiceProbe(network)
        model.compile(privacy=tfdpgen.PrivacySettings(dataset_size=100, batch_size=10, epochs=1, l2_norm_clip=0.3,
                                                      noise_multiplier=1.0), optimizer="sgd", engine=engine)
        recorder = Recorder() if engine == "fast" else None
        with tf.GradientTape(persistent=True) as tape:
            model.recorder = recorder
            loss = model.per_example_terms(x, None, True)["loss"]
            model.recorder = None
        sums[engine], _ = model.clipping.clipped_sums(tape, loss, network.trainable_variables, recorder, 0.3)
    for a, b in zip(sums["fast"], sums["vectorized"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


class LowRank(L.Layer):
    """A layer with no norm rule of its own and many parameters for its small inputs: x (U V)."""

    def __init__(self, rank, width, **kwargs):
        super().__init__(**kwargs)
        self.rank, self.width = rank, width

    def build(self, input_shape):
        self.u = self.add_weight(name="u", shape=(input_shape[-1], self.rank), initializer="glorot_uniform")
        self.v = self.add_weight(name="v", shape=(self.rank, self.width), initializer="glorot_uniform")

    def call(self, x):
        return tf.matmul(tf.matmul(x, self.u), self.v)


def test_layer_without_a_norm_rule_is_run_again_per_example_in_bounded_memory():
    """1,024 examples x 131k parameters would be 537 MB of per-example gradients (and the loss's Jacobian more); the
    recompute path holds one chunk of them at a time. Peak tensor memory from TensorFlow's allocator."""
    network = keras.Sequential([L.InputLayer(input_shape=(64,)), LowRank(1024, 64), L.Dense(4)])
    x = np.random.default_rng(0).normal(size=(1024, 64)).astype("float32")
    model = Probe(network)
    model.compile(privacy=tfdpgen.PrivacySettings(dataset_size=10_000, batch_size=1024, epochs=1, l2_norm_clip=1.0,
                                                  noise_multiplier=1.0), optimizer="sgd")

    @tf.function
    def sums(x):
        recorder = Recorder()
        with tf.GradientTape(persistent=True) as tape:
            model.recorder = recorder
            loss = model.per_example_terms(x, None, True)["loss"]
            model.recorder = None
        return model.clipping.clipped_sums(tape, loss, network.trainable_variables, recorder, 1.0)

    sums(x[:8])  # trace, and warm the allocator
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    _, norms = sums(x)
    peak_mb = (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2**20
    assert norms.shape == (1024,) and np.all(np.isfinite(norms))
    assert peak_mb < 150, f"{peak_mb:.0f} MB"


def test_memory_test_runs_where_onednn_is_off():
    """TensorFlow turns oneDNN on by itself only on some CPUs, and without it the CPU allocator keeps no statistics
    unless told (conftest does): the memory test above must pass on a CPU without oneDNN too."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0")
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)  # conftest must set it in the child, as it does here
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                             "bounded_memory"], env=env, capture_output=True, text=True, timeout=600,
                            cwd=os.path.dirname(__file__))
    assert result.returncode == 0, result.stdout[-3000:]


def test_batch_normalization_in_a_private_network_is_refused_before_training():
    network = keras.Sequential([L.InputLayer(input_shape=(5,)), L.Dense(4), L.BatchNormalization(), L.Dense(2)])
    settings = tfdpgen.PrivacySettings(dataset_size=100, batch_size=10, epochs=1, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="BatchNormalization.*LayerNormalization"):
        Probe(network).compile(privacy=settings, optimizer="sgd")
