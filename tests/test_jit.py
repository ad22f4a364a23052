"""The DP step compiles with XLA (jit_compile=True): same clipping as without it, the right noise, and it learns.

XLA's stateless random kernels draw other numbers than TensorFlow's for the same seed, so noisy runs are compared in
distribution, not value by value."""
import sys
import os

import numpy as np
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen.data.sampling import private_batches

sys.path.insert(0, os.path.dirname(__file__))
from toys import LinearToy  # noqa: E402


def fit_toy(jit, noise, width=3, zero_init=False, x=None, y=None):
    settings = tfdpgen.PrivacySettings(dataset_size=100, batch_size=16, epochs=1, l2_norm_clip=0.5,
                                       noise_multiplier=noise)
    model = LinearToy(5, width, zero_init=zero_init)
    model.compile(privacy=settings, optimizer="sgd", learning_rate=1.0, noise_key=2, jit_compile=jit)
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    return model.net.kernel.numpy()


def test_jit_clipping_equals_plain_and_noise_has_the_right_scale():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)).astype("float32") * 3, rng.normal(size=(16, 3)).astype("float32")
    np.testing.assert_allclose(fit_toy(True, 0.0, x=x, y=y), fit_toy(False, 0.0, x=x, y=y), rtol=1e-5, atol=1e-6)
    noise = fit_toy(True, 1.0, width=8192, zero_init=True, x=np.zeros((16, 5), "float32"),
                    y=np.zeros((16, 8192), "float32"))
    assert abs(noise.std() / (1.0 * 0.5 / 16) - 1) < 0.05


def test_jit_compiled_dp_vae_learns_on_static_batches():
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).uniform(size=(256, 28, 28, 1)).astype("float32") ** 3
    settings = tfdpgen.PrivacySettings(dataset_size=256, batch_size=32, epochs=4, noise_multiplier=0.5)
    model = tfdpgen.DPVAE(image_shape=(28, 28, 1), latent_dim=4, seed=1)
    model.compile(privacy=settings, optimizer="adam", learning_rate=1e-2, jit_compile=True)
    batches = private_batches(images, np.zeros(256, "int32"), model.privacy, seed=3, static_size=True)
    history = model.fit(batches, epochs=4, steps_per_epoch=8, verbose=0)
    assert history.history["loss"][-1] < 0.9 * history.history["loss"][0], history.history["loss"]
