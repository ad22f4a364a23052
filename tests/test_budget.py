"""The budget callback: epsilon in the logs every epoch, and no step past the target."""
import numpy as np
import pytest
import tensorflow as tf

import tfdpgen
from tfdpgen.data.sampling import private_batches
from tfdpgen.privacy import accounting
from tfdpgen.privacy.budget import PrivacyBudgetExhausted


def small_vae(settings):
    model = tfdpgen.DPVAE(image_shape=(8, 8, 1), latent_dim=2)
    model.compile(privacy=settings, optimizer="sgd", learning_rate=0.01)
    return model


def test_training_stops_at_the_last_step_within_the_target_and_logs_epsilon():
    n, batch, z, target = 400, 40, 1.5, 2.0
    settings = tfdpgen.PrivacySettings(dataset_size=n, batch_size=batch, epochs=100, noise_multiplier=z,
                                       target_epsilon=target).resolved()
    allowed = accounting.max_steps_within(target, z, batch / n, settings.delta)
    assert 10 < allowed < settings.steps  # the budget, not the epochs, ends this run
    x = np.random.default_rng(0).uniform(size=(n, 8, 8, 1)).astype("float32")
    model = small_vae(settings)
    history = model.fit(private_batches(x, np.zeros(n, "int32"), settings, seed=1), epochs=100,
                        steps_per_epoch=settings.steps_per_epoch, verbose=0)
    steps = int(model.dp_steps.numpy())
    assert steps == allowed
    spent = model.privacy_report()["epsilon"]
    assert spent <= target < accounting.compute_epsilon(z, batch / n, steps + 1, settings.delta)
    assert history.history["epsilon"][-1] == pytest.approx(spent)
    assert np.all(np.diff(history.history["epsilon"]) > 0)

    with pytest.raises(PrivacyBudgetExhausted, match="budget epsilon=2.0 is spent"):
        model.fit(private_batches(x, np.zeros(n, "int32"), settings, seed=2), epochs=1, steps_per_epoch=5, verbose=0)
    assert int(model.dp_steps.numpy()) == allowed


def test_dp_steps_is_a_model_variable_that_checkpoints_carry(tmp_path):
    settings = tfdpgen.PrivacySettings(dataset_size=100, batch_size=10, epochs=1, noise_multiplier=1.0)
    model = small_vae(settings)
    x = np.random.default_rng(0).uniform(size=(100, 8, 8, 1)).astype("float32")
    model.fit(private_batches(x, np.zeros(100, "int32"), model.privacy, seed=0), epochs=1, steps_per_epoch=7, verbose=0)
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    restored = small_vae(settings)
    restored(x[:1])
    tf.train.Checkpoint(model=restored).read(str(tmp_path / "ckpt")).expect_partial()
    assert int(restored.dp_steps.numpy()) == 7 and restored.privacy_report()["steps"] == 7
