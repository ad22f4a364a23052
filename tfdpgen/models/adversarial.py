"""What the GAN families share: a discriminator trained by the DP step, a generator trained from it alone.

Each DP step the discriminator's loss is softplus(-D(x_i)) for every real record i and softplus(D(G(z_j))) for a
fixed number of generated rows j (the expected batch share, conditions drawn uniformly: nothing about them depends on
the private batch, not even its size). One discriminator call covers both, so the fast engine sees each layer once;
every row is clipped on its own and only the real rows are records, so one record moves the release by at most C.
Then the generator takes one plain step on softplus(-D(G(z))) for fresh z: it never sees a real record, only the
privately trained discriminator, so its training is post-processing and costs no privacy.

Subclasses define `generator`, `fake_rows(seed, training) -> (rows, labels or None)` and
`discriminate(rows, labels, run=None) -> logits`.
"""
import tensorflow as tf

from tfdpgen.models.base import DPGenerativeModel


class AdversarialModel(DPGenerativeModel):
    metric_names = ("loss", "generator_loss")

    def __init__(self, latent_dim: int, seed: int = None, generator_learning_rate: float = 2e-4, **kwargs):
        super().__init__(latent_dim=latent_dim, seed=seed, **kwargs)
        self.generator_learning_rate = generator_learning_rate
        self.generator_optimizer = None

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        self.generator_optimizer = tf.keras.optimizers.legacy.Adam(self.generator_learning_rate, beta_1=0.5)
        with self.distribute_strategy.scope():
            self.generator_optimizer._create_all_weights(self.generator.trainable_variables)

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
        replicas = self.distribute_strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            fake, labels = self.fake_rows(self.step_seed(2), training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-self.discriminate(fake, labels)))
            scaled = loss / replicas  # the optimizer sums over replicas
        variables = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return {"generator_loss": loss}
