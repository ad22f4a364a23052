"""Per-example clipping and noise of the DP step, measured through model.fit."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen.privacy.clipping.vectorized import VectorizedClipping
from tfdpgen.privacy.gradients import private_gradients
from toys import LinearToy, requires_tf_privacy


def one_step(model, x, y, weights=None):
    data = (x, y) if weights is None else (x, y, weights)
    model.fit(tf.data.Dataset.from_tensors(data), epochs=1, verbose=0)


def settings(batch_size, clip, noise, dataset_size=10_000):
    return tfdpgen.PrivacySettings(dataset_size=dataset_size, batch_size=batch_size, epochs=1, l2_norm_clip=clip,
                                   noise_multiplier=noise)


ENGINES = pytest.mark.parametrize("engine", ["fast", pytest.param("vectorized", marks=requires_tf_privacy)])


@ENGINES
def test_update_is_mean_of_per_example_gradients_each_clipped(engine):
    rng = np.random.default_rng(0)
    batch, clip = 16, 1.0
    x = (rng.normal(size=(batch, 5)) * rng.uniform(0.05, 3, size=(batch, 1))).astype("float32")
    y = rng.normal(size=(batch, 3)).astype("float32")
    model = LinearToy(5, 3)
    model.compile(privacy=settings(batch, clip, 0.0), optimizer="sgd", learning_rate=1.0, engine=engine)
    before = model.net.kernel.numpy().copy()

    per_example = []
    for i in range(batch):
        with tf.GradientTape() as tape:
            loss = model.per_example_terms(x[i:i + 1], y[i:i + 1], training=True)["loss"][0]
        per_example.append(tape.gradient(loss, model.net.kernel).numpy())
    norms = np.array([np.linalg.norm(g) for g in per_example])
    assert (norms > clip).sum() >= 4 and (norms < clip).sum() >= 2, norms  # the test exercises both cases
    clipped = [g * min(1.0, clip / n) for g, n in zip(per_example, norms)]
    expected = before - np.mean(clipped, axis=0)

    one_step(model, x, y)
    after = model.net.kernel.numpy()
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(after, before - np.mean(per_example, axis=0), atol=1e-3)  # clipping changed the update


@ENGINES
@pytest.mark.parametrize("actual_batch", [64, 40])
def test_noise_std_is_sigma_clip_over_expected_batch(actual_batch, engine):
    """Zero true gradient: the update is the noise alone, std sigma*C/B with B the expected batch size."""
    expected_batch, clip, sigma, width = 64, 1.5, 1.2, 8192
    model = LinearToy(4, width, zero_init=True)
    model.compile(privacy=settings(expected_batch, clip, sigma), optimizer="sgd", learning_rate=1.0, engine=engine)
    x = np.zeros((actual_batch, 4), "float32")
    one_step(model, x, np.zeros((actual_batch, width), "float32"))
    noise = model.net.kernel.numpy().ravel()
    assert noise.size == 4 * width
    target = sigma * clip / expected_batch
    assert abs(noise.mean()) < 4 * target / np.sqrt(noise.size)
    assert abs(noise.std() / target - 1) < 0.05, (noise.std(), target)


@ENGINES
def test_outlier_update_norm_is_lr_clip_over_batch_in_vae(engine):
    """One outlier record through the real DP-VAE: the update of all its variables has norm exactly lr*C/B."""
    keras.utils.set_random_seed(3)
    clip, batch, lr = 0.5, 32, 0.1
    model = tfdpgen.DPVAE(image_shape=(8, 8, 1), latent_dim=4)
    model.compile(privacy=settings(batch, clip, 0.0, dataset_size=1000), optimizer="sgd", learning_rate=lr,
                  engine=engine)
    model(np.zeros((1, 8, 8, 1), "float32"))
    before = [v.numpy() for n in model.private_networks for v in n.trainable_variables]
    outlier = np.ones((1, 8, 8, 1), "float32")
    one_step(model, outlier, np.zeros((1,), "int32"))
    after = [v.numpy() for n in model.private_networks for v in n.trainable_variables]
    update = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before)))
    np.testing.assert_allclose(update, lr * clip / batch, rtol=1e-4)


def test_zero_weight_record_contributes_nothing_but_noise_is_still_added():
    width, batch = 4096, 8
    model = LinearToy(2, width, zero_init=True)
    model.compile(privacy=settings(batch, 1.0, 0.0), optimizer="sgd", learning_rate=1.0)
    one_step(model, np.ones((1, 2), "float32"), np.ones((1, width), "float32"), np.zeros((1,), "float32"))
    assert np.all(model.net.kernel.numpy() == 0)
    model = LinearToy(2, width, zero_init=True)
    model.compile(privacy=settings(batch, 1.0, 1.0), optimizer="sgd", learning_rate=1.0)
    one_step(model, np.ones((1, 2), "float32"), np.ones((1, width), "float32"), np.zeros((1,), "float32"))
    assert abs(model.net.kernel.numpy().std() / (1.0 / batch) - 1) < 0.05


def test_private_gradients_rejects_batch_mean_loss_and_plain_optimizers():
    model = LinearToy(2, 2)
    model.compile(privacy=settings(4, 1.0, 1.0), optimizer="sgd", learning_rate=1.0)
    variables = model.net.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.per_example_terms(tf.ones((4, 2)), tf.ones((4, 2)), True)["loss"])
    with pytest.raises(ValueError, match="one value per example"):
        private_gradients(model.clipping, tape, loss, variables, None, 4, model.dp_noise, 0, 1.0)
    with pytest.raises(TypeError, match="DP optimizer"):
        VectorizedClipping(keras.optimizers.legacy.SGD())


def test_noise_is_fresh_at_every_step():
    """Consecutive steps' noise draws are independent (a step count read after its increment would repeat a draw)."""
    width, steps = 4096, 12
    model = LinearToy(2, width, zero_init=True)
    model.compile(privacy=settings(16, 1.0, 1.0), optimizer="sgd", learning_rate=1.0)
    kernels = []
    record = keras.callbacks.LambdaCallback(on_batch_end=lambda b, logs: kernels.append(model.net.kernel.numpy()))
    data = tf.data.Dataset.from_tensors((np.zeros((16, 2), "float32"), np.zeros((16, width), "float32"))).repeat()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[record])
    updates = np.diff(np.stack([np.zeros_like(kernels[0])] + kernels), axis=0).reshape(steps, -1)
    correlations = np.corrcoef(updates)[np.triu_indices(steps, 1)]
    assert np.abs(correlations).max() < 0.05, correlations.max()
    assert int(model.dp_steps.numpy()) == steps


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_noise_draw_is_standard_normal_and_independent(dtype):
    """The Box-Muller draw: N(0, 1) by a KS test and by its tail mass, no correlation between coordinates (the two
    halves of a Box-Muller pair land far apart in the flat draw), odd counts, fresh values for another seed."""
    from scipy import stats

    from tfdpgen.privacy.noise import standard_normal
    count = 400_001
    values = standard_normal(count, tf.constant([5, 11], tf.int64), dtype).numpy()
    assert values.shape == (count,) and values.dtype == dtype.as_numpy_dtype
    assert stats.kstest(values, "norm").pvalue > 1e-3
    assert abs(np.mean(np.abs(values) > 3.0) - 2 * stats.norm.sf(3.0)) < 4e-4  # 0.0027 +- 5 standard errors
    half = count // 2
    pairs = np.corrcoef(values[:half], values[half:2 * half])[0, 1]
    squares = np.corrcoef(values[:half] ** 2, values[half:2 * half] ** 2)[0, 1]  # Box-Muller halves share a radius
    neighbours = np.corrcoef(values[:-1], values[1:])[0, 1]
    assert max(abs(pairs), abs(squares), abs(neighbours)) < 0.01, (pairs, squares, neighbours)
    other = standard_normal(count, tf.constant([5, 12], tf.int64), dtype).numpy()
    assert abs(np.corrcoef(values, other)[0, 1]) < 0.01
