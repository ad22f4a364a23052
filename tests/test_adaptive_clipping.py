"""Adaptive clipping: the clip norm converges to the target quantile, the noise and the accounting are right."""
import dp_accounting
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen.privacy.settings import PrivacySettingsError
from toys import LinearToy, assert_scale


def norms_data(size=2000, seed=0):
    """Records whose per-example gradient norms (for a zero kernel and learning rate 0) are known: ||y|| * ||x||."""
    rng = np.random.default_rng(seed)
    norms = rng.lognormal(mean=0.0, sigma=1.0, size=size).astype("float32")
    x = np.zeros((size, 2), "float32")
    x[:, 0] = 1.0
    y = np.zeros((size, 2), "float32")
    y[:, 1] = norms
    return x, y, norms


def adaptive_settings(**kwargs):
    values = dict(dataset_size=2000, batch_size=100, epochs=20, l2_norm_clip=0.1, noise_multiplier=1.0,
                  clipping="adaptive")
    values.update(kwargs)
    return tfdpgen.PrivacySettings(**values)


@pytest.mark.parametrize("quantile", [0.3, 0.8])
def test_clip_norm_converges_to_target_quantile(quantile):
    x, y, norms = norms_data()
    model = LinearToy(2, 2, zero_init=True)
    model.compile(privacy=adaptive_settings(target_quantile=quantile), optimizer="dp-sgd", learning_rate=0.0,
                  noise_key=1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2000, seed=0).batch(100).repeat()
    clips = []
    history = model.fit(data, epochs=1, steps_per_epoch=300, verbose=0,
                        callbacks=[keras.callbacks.LambdaCallback(
                            on_train_batch_end=lambda b, logs: clips.append(logs["clip"]))])
    assert "clip" in history.history
    late = np.array(clips[-100:])
    reached = np.mean([np.mean(norms <= c) for c in late])
    assert abs(reached - quantile) < 0.05, (reached, np.quantile(norms, quantile), late.mean())
    assert late.mean() > 3 * clips[0]  # it moved up from the initial 0.1 (both quantiles are above 0.3)


def test_sum_noise_uses_effective_noise_multiplier():
    width, batch = 8192, 20  # sigma_b = batch / 20 = 1: z_sum = 2.27 for z = 1.5
    settings = adaptive_settings(batch_size=batch, l2_norm_clip=1.0, noise_multiplier=1.5).resolved()
    z_sum = (1.5 ** -2 - (2 * batch / 20) ** -2) ** -0.5
    assert settings.effective_noise_multiplier == pytest.approx(z_sum, rel=1e-12)
    model = LinearToy(2, width, zero_init=True)
    model.compile(privacy=settings, optimizer="dp-sgd", learning_rate=1.0)
    model.fit(tf.data.Dataset.from_tensors((np.zeros((batch, 2), "float32"), np.zeros((batch, width), "float32"))),
              epochs=1, verbose=0)
    measured = model.net.kernel.numpy().std() * batch
    assert abs(measured / z_sum - 1) < 0.03 and measured / 1.5 > 1.4


def test_sum_noise_follows_the_current_clip_norm_not_the_initial_one():
    """After the clip norm has moved (0.1 -> about 1, the gradient norms' median), a step's noise is
    z_sum * (this step's clip) / B. Catches: noise scaled by the initial clip norm (the check at step 1 cannot, the two
    are equal there)."""
    x, y, _ = norms_data()
    model = LinearToy(2, 2, zero_init=True)
    model.compile(privacy=adaptive_settings(), optimizer="dp-sgd", learning_rate=0.0, noise_key=1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2000, seed=0).batch(100).repeat()
    model.fit(data, epochs=1, steps_per_epoch=100, verbose=0)
    clip = float(model.clip_norm.numpy())
    assert clip > 5 * 0.1
    width, batch = 8192, 100
    wide = LinearToy(2, width, zero_init=True)
    settings = adaptive_settings()
    wide.compile(privacy=settings, optimizer="dp-sgd", learning_rate=1.0, noise_key=2)
    wide.dp_steps.assign(100)  # a model 100 steps in keeps its moved clip norm (as a resumed one does)
    wide.clip_norm.assign(clip)
    wide.fit(tf.data.Dataset.from_tensors((np.zeros((batch, 2), "float32"), np.zeros((batch, width), "float32"))),
             epochs=1, verbose=0)
    assert_scale(wide.net.kernel.numpy() * batch, settings.resolved().effective_noise_multiplier * clip)


def count_noise_draws(model, steps=2000, batch=40):
    """The noise of the clipped-count query at each of `steps` steps that read no record (weights 0, so the true
    count is 0), read back from the clip norm's geometric update C' = C exp(-eta (b / B + 1/2 - gamma))."""
    x, y, w = np.zeros((batch, 2), "float32"), np.zeros((batch, 2), "float32"), np.zeros(batch, "float32")
    clips = [float(model.clip_norm.numpy())]
    model.fit(tf.data.Dataset.from_tensors((x, y, w)).repeat(), epochs=1, steps_per_epoch=steps, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(
                  on_train_batch_end=lambda b, logs: clips.append(float(logs["clip"])))])
    settings = model.privacy
    fraction = settings.target_quantile - np.diff(np.log(np.array(clips, np.float64))) / settings.clip_learning_rate
    assert np.all((fraction > 0.01) & (fraction < 0.99))  # never clipped to [0, 1]: b is read back exactly
    return (fraction - 0.5) * settings.batch_size


def test_clipped_count_noise_has_its_stated_stddev():
    """The noised count of unclipped examples carries N(0, sigma_b^2), sigma_b = clipped_count_stddev (B / 20 = 2
    here): the count's share of the budget is what the accountant assumes. Catches: the count query's noise halved
    (or scaled otherwise), which no other test measures."""
    model = LinearToy(2, 2, zero_init=True)
    settings = adaptive_settings(batch_size=40, dataset_size=4000)
    model.compile(privacy=settings, optimizer="dp-sgd", learning_rate=0.0, noise_key=5)
    assert model.privacy.count_stddev == 2.0
    assert_scale(count_noise_draws(model), 2.0, tolerance=0.05)


def test_epsilon_equals_dp_accounting_of_sum_and_count_events():
    settings = adaptive_settings(noise_multiplier=None, target_epsilon=3.0, delta=1e-5, epochs=5).resolved()
    model = LinearToy(2, 2)
    model.compile(privacy=settings, optimizer="dp-sgd")
    model.dp_steps.assign(settings.steps)
    report = model.privacy_report()
    q, sigma_b = 100 / 2000, 100 / 20
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.ComposedDpEvent([
        dp_accounting.GaussianDpEvent(report["effective_noise_multiplier"]),
        dp_accounting.GaussianDpEvent(sigma_b / 0.5)]))  # the centered count: sensitivity 1/2, stddev sigma_b
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(step, settings.steps))
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    assert report["epsilon"] <= 3.0
    assert report["clipping"] == "adaptive" and report["target_quantile"] == 0.5
    assert report["noise_multiplier"] < report["effective_noise_multiplier"]


def test_adaptive_clipping_in_graph_mode_and_under_jit():
    x, y, _ = norms_data(400)
    for jit in (False, True):
        model = LinearToy(2, 2)
        model.compile(privacy=adaptive_settings(dataset_size=400, batch_size=40), optimizer="dp-adam",
                      jit_compile=jit)
        history = model.fit(x, y, batch_size=40, epochs=2, verbose=0)
        assert history.history["clip"][-1] != pytest.approx(0.1)
        assert int(model.dp_steps.numpy()) == 20


@pytest.mark.parametrize("change, message", [
    (dict(target_quantile=1.0), "target_quantile must be in"),
    (dict(target_quantile=0.0), "target_quantile must be in"),
    (dict(clipping="sometimes"), "clipping must be one of"),
    (dict(noise_multiplier=11.0), "noise_multiplier < 2 \\* clipped_count_stddev"),
])
def test_invalid_adaptive_settings_fail_clearly(change, message):
    with pytest.raises(PrivacySettingsError, match=message):
        adaptive_settings(**change).resolved()


def test_adaptive_clipping_needs_the_fast_engine_and_fixed_clipping_for_dp2():
    model = LinearToy(2, 2)
    with pytest.raises(ValueError, match="engine='fast'"):
        model.compile(privacy=adaptive_settings(), engine="vectorized")
    with pytest.raises(ValueError, match="DP\\^2 clips with two norms"):
        model.compile(privacy=adaptive_settings(), optimizer="dp2-rmsprop")
