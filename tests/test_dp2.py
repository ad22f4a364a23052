"""DP^2 (delayed preconditioners) against a NumPy re-implementation of the paper's algorithm, step for step."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen.privacy.dp2 import DP2Optimizer
from tfdpgen.privacy.noise import GaussianNoise
from toys import LinearToy


def numpy_dp2(kernel, x, y, unit_noise, steps, delay, sigma, clip1, clip2, lr1, lr2, beta, eps, variant):
    """Algorithm 1 of Li et al. (ICLR 2023) as in the authors' DP^2 trainer, for 0.5 * ||x K - y||^2 per example."""
    kernel, batch = kernel.astype(np.float64), len(x)
    v, accumulated = np.zeros_like(kernel), np.zeros_like(kernel)
    kernels, preconditioners = [], []
    for t in range(steps):
        adaptive = t % (2 * delay) >= delay
        grads = [np.outer(x[i], x[i] @ kernel - y[i]) for i in range(batch)]
        if adaptive:
            grads = [g / (np.sqrt(v) + eps) for g in grads]
        clip, lr = (clip2, lr2) if adaptive else (clip1, lr1)
        clipped = sum(g * min(1.0, clip / np.linalg.norm(g)) for g in grads)
        released = (clipped + unit_noise[t] * sigma * clip) / batch
        kernel = kernel - lr * released
        if not adaptive:
            accumulated += released
            if t % (2 * delay) == delay - 1:
                mean_square = (accumulated / delay) ** 2
                v = beta * v + (1 - beta) * mean_square if variant == "rmsprop" else v + mean_square
                accumulated = np.zeros_like(kernel)
        kernels.append(kernel)
        preconditioners.append(v)
    return np.array(kernels), np.array(preconditioners)


def run_dp2(variant, steps=10, delay=2, sigma=0.7, clip1=1.0, clip2=0.5, lr1=0.3, lr2=0.05, beta=0.9, eps=1e-3):
    rng = np.random.default_rng(0)
    batch = 8
    x = rng.normal(size=(batch, 3)).astype("float32")
    y = rng.normal(size=(batch, 2)).astype("float32")
    model = LinearToy(3, 2)
    settings = tfdpgen.PrivacySettings(dataset_size=1000, batch_size=batch, epochs=1, l2_norm_clip=clip1,
                                       noise_multiplier=sigma)
    optimizer = DP2Optimizer(lr1, lr2, delay, beta=beta, epsilon=eps, adaptive_clip=clip2, variant=variant)
    model.compile(privacy=settings, optimizer=optimizer)
    start = model.net.kernel.numpy()
    unit = GaussianNoise(1.0, 1, model.dp_noise.key)  # the draws the model's noise scales by sigma * clip
    unit_noise = [unit([tf.zeros_like(model.net.kernel)], t)[0].numpy() for t in range(steps)]
    kernels, preconditioners = [], []

    def record(batch_index, logs):
        kernels.append(model.net.kernel.numpy())
        preconditioners.append(optimizer.get_slot(model.net.kernel, "preconditioner").numpy())

    model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), epochs=1, steps_per_epoch=steps, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=record)])
    expected = numpy_dp2(start, x, y, unit_noise, steps, delay, sigma, clip1, clip2, lr1, lr2, beta, eps, variant)
    return (np.array(kernels), np.array(preconditioners)), expected, start


@pytest.mark.parametrize("variant", ["rmsprop", "adagrad"])
def test_dp2_matches_numpy_algorithm_step_for_step(variant):
    (kernels, preconditioners), (expected_kernels, expected_preconditioners), _ = run_dp2(variant)
    np.testing.assert_allclose(kernels, expected_kernels, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(preconditioners, expected_preconditioners, rtol=1e-6, atol=1e-9)
    assert np.all(preconditioners[-1] > 0)  # the adaptive phases did precondition


def test_preconditioner_is_built_from_released_noisy_gradients_only():
    """After the first DP-SGD phase, v = (1 - beta) * (mean released gradient)^2, the released gradients read off the
    weight updates; the un-noised clipped gradients give another v."""
    delay, lr1, beta = 3, 0.3, 0.9
    (kernels, preconditioners), _, start = run_dp2("rmsprop", steps=delay, delay=delay, sigma=2.0, lr1=lr1, beta=beta)
    trajectory = np.concatenate([start[None], kernels])
    released = (trajectory[:-1] - trajectory[1:]) / lr1
    np.testing.assert_allclose(preconditioners[-1], (1 - beta) * released.mean(0) ** 2, rtol=1e-4, atol=1e-9)
    (quiet_kernels, quiet_preconditioners), _, _ = run_dp2("rmsprop", steps=delay, delay=delay, sigma=0.0, lr1=lr1)
    assert not np.allclose(preconditioners[-1], quiet_preconditioners[-1], rtol=0.5)


def test_dp2_invalid_settings_fail_clearly():
    with pytest.raises(ValueError, match="delay must be a whole number of steps >= 1"):
        DP2Optimizer(0.1, delay=0)
    model = LinearToy(3, 2)
    settings = tfdpgen.PrivacySettings(dataset_size=1000, batch_size=8, epochs=1, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="engine='fast'"):
        model.compile(privacy=settings, optimizer="dp2-rmsprop", engine="vectorized")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        model.compile(privacy=settings, optimizer="rmsprop")
