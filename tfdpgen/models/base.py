"""The base of every generator: a Keras Model whose train_step trains the networks that read private records with DP."""
import threading

import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.adaptive_clipping import AdaptiveClipNorm
from tfdpgen.privacy.budget import PrivacyBudget
from tfdpgen.privacy.clipping.fast import FastClipping, Recorder
from tfdpgen.privacy.clipping.vectorized import VectorizedClipping
from tfdpgen.privacy.gradients import private_gradients
from tfdpgen.data.sampling import new_seed
from tfdpgen.privacy.noise import GaussianNoise, replica_stream
from tfdpgen.privacy.dp2 import DP2Optimizer
from tfdpgen.privacy.optimizers import canonical_name, check_combination, make_optimizer
from tfdpgen.privacy.report import privacy_report
from tfdpgen.privacy.settings import PrivacySettings


class DPGenerativeModel(keras.Model):
    """A generator trained with DP-SGD in `model.fit`.

    Subclasses define `per_example_terms(x, y, training)` (a dict of per-example vectors whose "loss" entry is
    differentiated; an optional "public_loss" holds rows computed from no record, such as a GAN discriminator's loss on
    a fixed number of generated samples, which are clipped like examples but never counted as records), `private_networks` (every network that reads private records), `generator_networks` (what is
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
        self.adaptive_clip = None
        self.optimizer_name = None
        self._thread_state = threading.local()  # MirroredStrategy traces each replica's step in its own thread
        self.dp_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="dp_steps",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.random_key = tf.Variable(new_seed() if seed is None else seed, dtype=tf.int64, trainable=False,
                                      name="random_key", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # The clip norm adaptive clipping moves (a variable, so checkpoints carry it); set at compile before step 1.
        self.clip_norm = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="clip_norm",
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}

    def compile(self, privacy: PrivacySettings, optimizer="dp-adam", learning_rate: float = 1e-3,
                noise_key: int = None, engine: str = "fast", dp2_delay: int = 100, dp2_learning_rate: float = None,
                **kwargs):
        """Compile with DP settings.

        `optimizer`: "dp-sgd", "dp-adam", "dp2-rmsprop" or "dp2-adagrad" (DP^2, privacy.dp2: phases of `dp2_delay`
        steps, `dp2_learning_rate` in the adaptive phases), or a Keras legacy optimizer instance. `engine`: how
        per-example gradients are clipped, "fast" (per-layer norms, the default) or "vectorized" (TensorFlow Privacy's
        vectorized optimizer; fixed clipping with dp-sgd/dp-adam only). Adaptive clipping is a PrivacySettings field.

        `noise_key` seeds the DP noise (default: fresh OS entropy). Keep it as secret as the data.
        """
        if not isinstance(privacy, PrivacySettings):
            raise TypeError(f"compile(privacy=...) needs PrivacySettings, got {type(privacy).__name__}.")
        privacy = privacy if privacy.is_resolved else privacy.resolved()
        self.check_private_networks()
        if isinstance(optimizer, str):
            self.optimizer_name = canonical_name(optimizer)
            keras_optimizer = make_optimizer(optimizer, privacy, learning_rate, engine, dp2_delay, dp2_learning_rate)
        else:
            self.optimizer_name, keras_optimizer = type(optimizer).__name__, optimizer
        check_combination(privacy, keras_optimizer, engine)
        dp2 = isinstance(keras_optimizer, DP2Optimizer)
        self.privacy = privacy
        replicas = self.distribute_strategy.num_replicas_in_sync
        self.dp_noise = GaussianNoise(privacy.effective_noise_multiplier, replicas, noise_key)
        self.clipping = FastClipping() if engine == "fast" else VectorizedClipping(keras_optimizer)
        self.adaptive_clip = None
        if privacy.clipping == "adaptive":
            self.adaptive_clip = AdaptiveClipNorm(self.clip_norm, privacy, replicas, (self.dp_noise.key + 1) % 2**63)
        if int(self.dp_steps.numpy()) == 0:  # a model that has taken DP steps keeps its (checkpointed) clip norm
            self.clip_norm.assign(privacy.l2_norm_clip)
        super().compile(optimizer=keras_optimizer, **kwargs)
        if dp2:  # its state must exist before the first step reads it (under a strategy, created in its scope)
            with self.distribute_strategy.scope():
                keras_optimizer._create_all_weights(
                    [v for network in self.private_networks for v in network.trainable_variables])

    def check_private_networks(self):
        """Refuse layers that mix examples: with BatchNormalization one record's gradient reaches every other
        example's loss through the batch statistics, so clipping each example no longer bounds what one record moves."""
        for network in self.private_networks:
            mixing = [layer.name for layer in network._flatten_layers()
                      if isinstance(layer, keras.layers.BatchNormalization)]
            if mixing:
                raise ValueError(f"{network.name} reads private records and has BatchNormalization layers "
                                 f"({', '.join(mixing)}): batch statistics mix examples, which breaks per-example "
                                 "clipping. Use LayerNormalization (or GroupNormalization) instead.")

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

    num_classes = None  # conditional families: the number of labels `generate` takes

    def one_hot(self, labels, dtype=tf.float32):
        """Labels of any shape [B] or [B, 1] as one-hot rows [B, num_classes]."""
        return tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), self.num_classes, dtype=dtype)

    def non_private_step(self) -> dict:
        """Updates after the DP step of networks that never read private records (a GAN's generator, trained from the
        privately trained discriminator only: post-processing). Takes no data by design. Returns metrics."""
        return {}

    def train_step(self, data):
        x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
        recorder = Recorder() if isinstance(self.clipping, FastClipping) else None
        with tf.GradientTape(persistent=recorder is not None) as tape:
            self.recorder = recorder
            try:
                terms = self.per_example_terms(x, y, training=True)
            finally:
                self.recorder = None
            loss = terms["loss"] if weights is None else terms["loss"] * tf.cast(weights, terms["loss"].dtype)
            if "public_loss" in terms:  # rows that read no record (a GAN's fakes): clipped, but not examples
                loss = tf.concat([loss, terms["public_loss"]], 0)
        variables = [v for network in self.private_networks for v in network.trainable_variables]
        step = self.dp_steps.read_value()
        clip, scales = self.step_clip_norm(), None
        if isinstance(self.optimizer, DP2Optimizer):
            clip, scales = self.optimizer.clip_norm(clip), self.optimizer.per_example_scales(variables)
        gradients, norms = private_gradients(self.clipping, tape, loss, variables, recorder, self.privacy.batch_size,
                                             self.dp_noise, step, clip, scales)
        self.optimizer.apply_gradients(zip(gradients, variables))
        if norms is not None:  # the records' norms (public rows come after them); the vectorized engine gives none
            norms = norms[:tf.shape(terms["loss"])[0]]
        updates = self.end_dp_step(gradients, norms, weights, step, clip)
        for name, values in terms.items():
            if name in self.trackers:
                self.trackers[name].update_state(values, sample_weight=weights)
        with tf.control_dependencies(updates):
            for name, value in self.non_private_step().items():
                self.trackers[name].update_state(value)
        return self.step_logs()

    def step_clip_norm(self):
        """This step's clip norm: the adaptive one, or the settings' fixed one."""
        return self.privacy.l2_norm_clip if self.adaptive_clip is None else self.clip_norm.read_value()

    def end_dp_step(self, released, norms, weights, step, clip):
        """After a release: adaptive clipping moves its clip norm from the records' `norms`, then the step count
        moves (only after this step's noise was drawn). Returns the ops the rest of the step must follow."""
        updates = list(released)
        if self.adaptive_clip is not None:
            present = tf.ones_like(norms, tf.bool) if weights is None else tf.reshape(weights, [-1]) > 0
            updates.append(self.adaptive_clip.update(norms, present, step, clip))
        with tf.control_dependencies(updates):
            self.dp_steps.assign_add(1)
        return updates

    def step_logs(self) -> dict:
        logs = {name: tracker.result() for name, tracker in self.trackers.items()}
        if self.adaptive_clip is not None:
            logs["clip"] = self.clip_norm.read_value()
        return logs

    def test_step(self, data):
        x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
        for name, values in self.per_example_terms(x, y, training=False).items():
            if name in self.trackers:
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

    def privacy_report(self, releases=None) -> dict:
        """The privacy.json fields for the steps this model has taken, after the one-shot `releases` (a PrivacyLedger)
        the run made before them, if any."""
        report = privacy_report(self.privacy, int(self.dp_steps.numpy()), releases)
        report["optimizer"] = self.optimizer_name
        report["dp2_delay"] = self.optimizer.delay if isinstance(self.optimizer, DP2Optimizer) else None
        if self.adaptive_clip is not None:
            report["final_l2_norm_clip"] = float(self.clip_norm.numpy())
        return report

    @classmethod
    def from_config(cls, config):
        """The network `get_config()` describes (the run wing rebuilds an export's network so, then reads weights)."""
        return cls(**config)

    def sample(self, num_samples: int, seed: int = 0, labels=None):
        """`num_samples` samples; conditional families take `labels` (default: 0, 1, ..., cycling over classes)."""
        return draw_samples(self, num_samples, seed, labels)


def moving_average_decay(decay, steps):
    """`decay` with the usual warm-up, min(decay, (1 + t) / (10 + t)) after t updates, so that a short run's average
    is not one of its first weights."""
    t = tf.cast(steps, tf.float32)
    return tf.minimum(decay, (1 + t) / (10 + t))


def update_moving_average(average_network, network, decay):
    """(in a train step) average_network's weights <- decay * them + (1 - decay) * network's, alike on every replica."""
    def update(strategy, decay):
        for average, weight in zip(average_network.weights, network.weights):
            strategy.extended.update(average, lambda a, w, d: a.assign(d * a + (1 - d) * w), args=(weight, decay))

    tf.distribute.get_replica_context().merge_call(update, args=(decay,))


def draw_samples(model, num_samples: int, seed: int = 0, labels=None):
    """`model.generate` at `num_samples` latents drawn from `seed`; a conditional model (`num_classes` set) draws the
    given `labels`, by default 0, 1, ..., cycling over its classes. For every generator with `latent_dim`,
    `num_classes` and `generate(z, labels)`, DP-SGD-trained or not (DP-MERF)."""
    z = tf.random.stateless_normal([num_samples, model.latent_dim], seed=[seed, 0])
    if model.num_classes is not None and labels is None:
        labels = tf.range(num_samples) % model.num_classes
    return tf.nest.map_structure(lambda t: t.numpy(), model.generate(z, labels))
