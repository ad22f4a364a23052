"""The run wing: a family is one registry record (a toy one trains, evaluates and exports through the CLI with no other
file touched), a run's configuration is frozen and checked where it is built, and the paths a user gives are
recorded resolved, so a run evaluates from any directory."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfdpgen import cli
from tfdpgen.models.base import DPGenerativeModel
from tfdpgen.models.registry import DP_SGD, FAMILIES, IMAGES, Family, register
from tfdpgen.runs.config import RunConfig


class ToyGenerator(DPGenerativeModel):
    """Conditional images from one dense layer over (z, one-hot label), fitted by the squared error to each record at
    a z drawn per step: a family small enough to show what adding one takes."""

    def __init__(self, image_shape=(8, 8, 1), num_classes=10, latent_dim=4, seed=None, **kwargs):
        super().__init__(latent_dim=latent_dim, seed=seed, **kwargs)
        self.image_shape, self.num_classes = tuple(int(size) for size in image_shape), num_classes
        self.net = keras.Sequential([keras.layers.InputLayer(input_shape=(latent_dim + num_classes,)),
                                        keras.layers.Dense(int(np.prod(self.image_shape)), activation="sigmoid"),
                                        keras.layers.Reshape(self.image_shape)])

    private_networks = property(lambda self: [self.net])
    generator_networks = property(lambda self: [self.net])

    def per_example_terms(self, x, y, training):
        z = tf.random.stateless_normal([tf.shape(x)[0], self.latent_dim], seed=self.step_seed())
        fitted = self.run(self.net, tf.concat([z, self.one_hot(y)], -1), training)
        return {"loss": tf.reduce_sum(tf.square(fitted - tf.cast(x, fitted.dtype)), axis=[1, 2, 3])}

    def generate(self, z, labels=None, training=False):
        return self.net(tf.concat([z, self.one_hot(labels, z.dtype)], -1), training=training)

    def get_config(self):
        return {"image_shape": self.image_shape, "num_classes": self.num_classes, "latent_dim": self.latent_dim}


@pytest.fixture
def toy_family():
    family = register(Family("toy", ToyGenerator, IMAGES, DP_SGD, "a toy conditional generator", conditional=True,
                             recipe={"epochs": 2, "learning_rate": 1e-2}))
    try:
        yield family
    finally:
        FAMILIES.pop("toy")


def test_a_registered_family_trains_evaluates_and_exports_through_the_cli(toy_family, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--model", "toy", "--output", str(run), "--quiet"]) == 0
    report = json.loads((run / "privacy.json").read_text())
    assert report["epsilon"] <= 3.0 and report["steps"] == 2 * round(1438 / 64)
    metadata = json.loads((run / "saved_model" / "1" / "assets" / "tfdpgen.json").read_text())
    assert metadata["family"] == "toy" and metadata["config"]["num_classes"] == 10
    assert cli.main(["evaluate", "--run", str(run)]) == 0
    assert "train on synthetic, test on real" in capsys.readouterr().out
    assert cli.main(["export", "--run", str(run), "--model-name", "toy", "--base-path", str(tmp_path / "base")]) == 0
    sampler = tf.saved_model.load(str(tmp_path / "base" / "toy" / "1")).signatures["sample_conditional"]
    assert sampler(labels=tf.constant([1, 2]), seed=tf.constant(0, tf.int64))["samples"].shape == (2, 8, 8, 1)


def test_the_configuration_is_frozen_checked_where_built_and_keeps_performance_apart(tmp_path):
    config = RunConfig.build("vae", epochs=3, engine="fast", devices=None, checkpoint_every=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 4
    assert config.performance.checkpoint_every == 5 and config.epsilon == 3.0
    assert "engine" not in config.to_json() and "checkpoint_every" not in config.to_json()
    with pytest.raises(ValueError, match="--checkpoint-every must be at least 1"):
        RunConfig.build("vae", checkpoint_every=0)
    with pytest.raises(ValueError, match="--latent-dim is not a setting of diffusion"):
        RunConfig.build("diffusion", latent_dim=4)
    with pytest.raises(ValueError, match="--engine is a DP-SGD setting; the merf family"):
        RunConfig.build("merf", engine="vectorized")
    with pytest.raises(TypeError, match="unknown setting 'epoch'"):
        RunConfig.build("vae", epoch=3)


def test_a_data_directory_is_recorded_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = RunConfig.build("marginal", data_dir="tables/adult")
    assert config.data_dir == str(tmp_path / "tables" / "adult") and os.path.isabs(config.to_json()["data_dir"])
