"""DP training learns on real data (the failure TF Privacy users report most: optimizers that silently stop learning)."""
import numpy as np
import tensorflow as tf

import tfdpgen
from tfdpgen.data.images import load_images
from tfdpgen.data.sampling import private_batches


def fit_vae(images, epochs, batch_size, epsilon, image_shape):
    tf.keras.utils.set_random_seed(0)
    settings = tfdpgen.PrivacySettings(dataset_size=len(images), batch_size=batch_size, epochs=epochs,
                                       target_epsilon=epsilon)
    model = tfdpgen.DPVAE(image_shape=image_shape, latent_dim=8)
    model.compile(privacy=settings, optimizer="adam", learning_rate=5e-3)
    batches = private_batches(images, np.zeros(len(images), "int32"), model.privacy, seed=0)
    history = model.fit(batches, epochs=epochs, steps_per_epoch=model.privacy.steps_per_epoch, verbose=0)
    return model, history.history


def test_dp_vae_learns_digits():
    data = load_images("digits")
    model, history = fit_vae(data.images, epochs=8, batch_size=64, epsilon=3.0, image_shape=(8, 8, 1))
    assert history["loss"][-1] < 0.85 * history["loss"][0], history["loss"]
    assert history["epsilon"][-1] <= 3.0


def test_dp_vae_learns_real_mnist(shared_data):
    data = load_images("mnist", data_dir=shared_data / "mnist")
    assert data.images.shape == (10_000, 28, 28, 1)
    private = data.images[:2000]  # a slice of the benchmark's private split, small enough for CI
    model, history = fit_vae(private, epochs=2, batch_size=100, epsilon=8.0, image_shape=(28, 28, 1))
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]
    held_out = model.evaluate(data.images[8000:8500], verbose=0, return_dict=True)
    assert held_out["loss"] < history["loss"][0]
