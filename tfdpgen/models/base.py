"""The base of every generator: a Keras Model whose train_step trains the networks that read private records with DP."""
import threading

import tensorflow as tf

from tfdpgen.privacy.budget import PrivacyBudget
from tfdpgen.privacy.clipping.fast import FastClipping, Recorder
from tfdpgen.privacy.clipping.vectorized import VectorizedClipping
from tfdpgen.privacy.gradients import private_gradients
from tfdpgen.data.sampling import new_seed
from tfdpgen.privacy.noise import GaussianNoise, replica_stream
from tfdpgen.privacy.optimizers import make_optimizer
from tfdpgen.privacy.report import privacy_report
from tfdpgen.privacy.settings import PrivacySettings


class DPGenerativeModel(tf.keras.Model):
    """A generator trained with DP-SGD in `model.fit`.

    Subclasses define `per_example_terms(x, y, training)` (a dict of per-example vectors whose "loss" entry is
    differentiated), `private_networks` (every network that reads private records), `generator_networks` (what is
    exported) and `generate(z, labels)`. Inside `per_example_terms`, call networks through `self.run(network, x)`: the
    fast clipping engine records their layers there (a layer used outside `run` falls back to slower Jacobians).
    The step count the accountant uses is the model variable `dp_steps`, so checkpoints carry it. Model randomness inside a step (a VAE's reparameterization) should use `step_seed`, so a
    replayed step is the same computation.
    """

    metric_names = ("loss",)

    def __init__(self, latent_dim: int, seed: int = None, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.privacy = None
        self.dp_noise = None
        self.clipping = None
        self._thread_state = threading.local()  # MirroredStrategy traces each replica's step in its own thread
        self.dp_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="dp_steps",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.random_key = tf.Variable(new_seed() if seed is None else seed, dtype=tf.int64, trainable=False,
                                      name="random_key", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.trackers = {name: tf.keras.metrics.Mean(name=name) for name in self.metric_names}

    def compile(self, privacy: PrivacySettings, optimizer: str = "adam", learning_rate: float = 1e-3,
                noise_key: int = None, engine: str = "fast", **kwargs):
        """Compile with DP settings. `optimizer`: "sgd" or "adam". `engine`: how per-example gradients are clipped,
        "fast" (per-layer norms, the default) or "vectorized" (TensorFlow Privacy's vectorized optimizer).

        `noise_key` seeds the DP noise (default: fresh OS entropy). Keep it as secret as the data.
        """
        if not isinstance(privacy, PrivacySettings):
            raise TypeError(f"compile(privacy=...) needs PrivacySettings, got {type(privacy).__name__}.")
        self.privacy = privacy if privacy.is_resolved else privacy.resolved()
        replicas = self.distribute_strategy.num_replicas_in_sync
        self.dp_noise = GaussianNoise(self.privacy.noise_multiplier * self.privacy.l2_norm_clip, replicas, noise_key)
        keras_optimizer = make_optimizer(optimizer, self.privacy, learning_rate, engine)
        self.clipping = (FastClipping(self.privacy.l2_norm_clip) if engine == "fast" else
                         VectorizedClipping(keras_optimizer))
        super().compile(optimizer=keras_optimizer, **kwargs)

    @property
    def recorder(self):
        """The fast engine's Recorder while this thread traces a train step, else None."""
        return getattr(self._thread_state, "recorder", None)

    @recorder.setter
    def recorder(self, value):
        self._thread_state.recorder = value

    def run(self, network, inputs, training=False):
        """Call `network` on `inputs`; during a fast-engine train step, layer by layer with its layers recorded."""
        if self.recorder is None:
            return network(inputs, training=training)
        return self.recorder.run(network, inputs, training)

    def step_seed(self, salt: int = 0):
        """A stateless seed for this step, replica and purpose `salt`."""
        return tf.stack([self.random_key + salt,
                         replica_stream(self.dp_steps, self.distribute_strategy.num_replicas_in_sync)])

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def private_networks(self):
        raise NotImplementedError

    @property
    def generator_networks(self):
        raise NotImplementedError

    def per_example_terms(self, x, y, training):
        raise NotImplementedError

    def generate(self, z, labels=None):
        raise NotImplementedError

    def train_step(self, data):
        x, y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
        recorder = Recorder() if isinstance(self.clipping, FastClipping) else None
        with tf.GradientTape(persistent=recorder is not None) as tape:
            self.recorder = recorder
            try:
                terms = self.per_example_terms(x, y, training=True)
            finally:
                self.recorder = None
            loss = terms["loss"] if weights is None else terms["loss"] * tf.cast(weights, terms["loss"].dtype)
        variables = [v for network in self.private_networks for v in network.trainable_variables]
        gradients = private_gradients(self.clipping, tape, loss, variables, recorder, self.privacy.batch_size,
                                      self.dp_noise, self.dp_steps.read_value())
        self.optimizer.apply_gradients(zip(gradients, variables))
        with tf.control_dependencies(gradients):  # the step count moves only after this step's noise was drawn
            self.dp_steps.assign_add(1)
        for name, values in terms.items():
            self.trackers[name].update_state(values, sample_weight=weights)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        x, y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
        for name, values in self.per_example_terms(x, y, training=False).items():
            self.trackers[name].update_state(values, sample_weight=weights)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def fit(self, *args, callbacks=None, **kwargs):
        """Keras fit, with a PrivacyBudget callback first unless one is given: epsilon in the logs, stop at target."""
        if self.privacy is None:
            raise RuntimeError("compile the model with PrivacySettings before fit.")
        callbacks = list(callbacks or [])
        if not any(isinstance(callback, PrivacyBudget) for callback in callbacks):
            callbacks.insert(0, PrivacyBudget())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def privacy_report(self) -> dict:
        """The privacy.json fields for the steps this model has taken."""
        return privacy_report(self.privacy, int(self.dp_steps.numpy()))

    def sample(self, num_samples: int, seed: int = 0, labels=None):
        z = tf.random.stateless_normal([num_samples, self.latent_dim], seed=[seed, 0])
        return self.generate(z, labels).numpy()
