"""What the GAN families share: a discriminator trained by the DP step, a generator trained from it alone.

Each DP step the discriminator's loss is softplus(-D(x_i)) for every real record i and softplus(D(G(z_j))) for a
fixed number of generated rows j (the expected batch share, conditions drawn uniformly: nothing about them depends on
the private batch, not even its size). One discriminator call covers both, so the fast engine sees each layer once;
every row is clipped on its own and only the real rows are records, so one record moves the release by at most C.
Then the generator takes one plain step on softplus(-D(G(z))) for fresh z: it never sees a real record, only the
privately trained discriminator, so its training is post-processing and costs no privacy.

The DP-GAN recipe (Bie et al., "Private GANs, Revisited", TMLR 2023, github alexbie98/dpgan-revisit; DPImageBench's
DP-GAN configs): `discriminator_steps` DP steps of the discriminator per generator step (generator steps cost no
privacy, so a noisy discriminator is better given more steps to keep ahead), and samples and exports drawn from an
exponential moving average of the generator's weights (`average_decay`, 0.999, with the usual warm-up
min(decay, (1 + t) / (10 + t)) over generator steps t, so that a short run is not an average of its first weights).

Subclasses build `generator`, then call `self.track_average()`, and define `fake_rows(seed, training) -> (rows, labels
or None)` (through `self.generator`) and `discriminate(rows, labels, run=None) -> logits`; `generate` draws from
`self.average_generator`.
"""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.models.base import DPGenerativeModel, moving_average_decay, update_moving_average


class AdversarialModel(DPGenerativeModel):
    metric_names = ("loss", "generator_loss")

    def __init__(self, latent_dim: int, seed: int = None, generator_learning_rate: float = 2e-4,
                 discriminator_steps: int = 1, average_decay: float = 0.999, **kwargs):
        super().__init__(latent_dim=latent_dim, seed=seed, **kwargs)
        if not (isinstance(discriminator_steps, int) and discriminator_steps >= 1):
            raise ValueError(f"discriminator_steps must be a whole number of at least 1, got {discriminator_steps!r}.")
        if not 0 <= average_decay < 1:
            raise ValueError(f"average_decay must be in [0, 1), got {average_decay!r}.")
        self.generator_learning_rate = generator_learning_rate
        self.discriminator_steps, self.average_decay = discriminator_steps, average_decay
        self.generator_optimizer = None
        self.zero_rate_skips = False
        self.average_generator = None

    generator_networks = property(lambda self: [self.average_generator])

    @property
    def generator_steps(self):
        """Generator steps taken: one after every `discriminator_steps`-th DP step."""
        return self.dp_steps // self.discriminator_steps

    def track_average(self):
        """Start the generator's moving average at its initial weights (call once `self.generator` is built)."""
        self.average_generator = keras.models.clone_model(self.generator)
        self.average_generator._name = "average_generator"
        self.average_generator.set_weights(self.generator.get_weights())

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        rate = self.generator_learning_rate
        with self.distribute_strategy.scope():
            # Under a tf.distribute strategy apply_gradients synchronises replicas, which TF does not allow inside
            # tf.cond: between generator steps the generator then takes a step at rate 0 (Adam moves weights in
            # proportion to it; its moments see the gradients) instead of skipping it.
            self.zero_rate_skips = self.discriminator_steps > 1 and tf.distribute.has_strategy()
        if self.zero_rate_skips:
            rate = lambda: self.generator_learning_rate * tf.cast(self.generator_due(), tf.float32)  # noqa: E731
        self.generator_optimizer = keras.optimizers.legacy.Adam(rate, beta_1=0.5)
        with self.distribute_strategy.scope():
            self.generator_optimizer._create_all_weights(self.generator.trainable_variables)

    def generator_due(self):
        """Whether the generator steps after this DP step (dp_steps already counts it)."""
        return tf.equal(self.dp_steps % self.discriminator_steps, 0)

    def fake_count(self) -> int:
        return self.privacy.batch_size // self.distribute_strategy.num_replicas_in_sync

    def per_example_terms(self, x, y, training):
        fake, fake_labels = self.fake_rows(self.step_seed(1), training)  # the generator is not trained here
        labels = None if fake_labels is None else tf.concat([tf.cast(y, tf.int32), fake_labels], 0)
        logits = self.discriminate(tf.concat([tf.cast(x, fake.dtype), fake], 0), labels,
                                   lambda network, inputs: self.run(network, inputs, training))
        records = tf.shape(x)[0]
        return {"loss": tf.nn.softplus(-logits[:records]), "public_loss": tf.nn.softplus(logits[records:])}

    def non_private_step(self):
        """A generator step after every `discriminator_steps`-th DP step, then its moving average."""
        due = self.generator_due()
        if self.discriminator_steps == 1 or self.zero_rate_skips:
            loss = self.generator_step()
        else:
            loss = tf.cond(due, self.generator_step, lambda: tf.constant(0.0))
        self.trackers["generator_loss"].update_state(loss, sample_weight=tf.cast(due, tf.float32))
        with tf.control_dependencies([loss]):
            decay = tf.where(due, moving_average_decay(self.average_decay, self.generator_steps), 1.0)
            update_moving_average(self.average_generator, self.generator, decay)
        return {}

    def generator_step(self):
        replicas = self.distribute_strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            fake, labels = self.fake_rows(self.step_seed(2), training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-self.discriminate(fake, labels)))
            loss += self.generator_regularizer(self.step_seed(3))
            scaled = loss / replicas  # the optimizer sums over replicas
        variables = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def generator_regularizer(self, seed):
        """A further term of the generator's loss, from nothing private but released statistics (none here)."""
        return 0.0
