"""Small deterministic models for statistical tests of the DP step."""
import tensorflow as tf

from tfdpgen.models.base import DPGenerativeModel


class LinearToy(DPGenerativeModel):
    """A one-layer 'generator' whose per-example loss is 0.5 * ||W x - t||^2 (no randomness inside a step)."""

    def __init__(self, inputs, outputs, zero_init=False):
        super().__init__(latent_dim=inputs)
        init = "zeros" if zero_init else tf.keras.initializers.RandomNormal(seed=1)
        self.net = tf.keras.layers.Dense(outputs, use_bias=False, kernel_initializer=init)
        self.net.build((None, inputs))

    private_networks = property(lambda self: [self.net])
    generator_networks = property(lambda self: [self.net])

    def per_example_terms(self, x, y, training):
        return {"loss": 0.5 * tf.reduce_sum(tf.square(self.run(self.net, x) - y), axis=1)}
