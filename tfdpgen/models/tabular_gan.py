"""Tabular conditional GAN in the spirit of DP-CTGAN: one-hot categories and bound-scaled continuous columns
(data.tables), conditioned on one categorical column; only the discriminator reads private rows.

The discriminator sees an encoded row with its condition's one-hot; the training step is models.adversarial's.
Generated rows, for the discriminator and for the generator's own step, take conditions drawn uniformly over the
condition's categories, which balances rare classes without reading their frequencies (frequencies would cost
privacy). Generated categories are Gumbel-softmax relaxed
(temperature 0.2) for the discriminator and sampled for output; continuous columns are tanh in [-1, 1] and mapped back
to their declared bounds. `generate` returns one tensor per original column, categories as their declared strings.
"""
import tensorflow as tf

from tfdpgen.data.tables import TableSchema
from tfdpgen.models.adversarial import AdversarialModel

L = tf.keras.layers
TEMPERATURE = 0.2
HIDDEN = 256
DROPOUT = 0.5
HARD = False


def residual_generator(input_dim: int, hidden: int, width: int) -> tf.keras.Model:
    """CTGAN's generator (Xu et al., NeurIPS 2019, github sdv-dev/CTGAN): each block's output is concatenated to its
    input, so later layers see the latent and condition directly. LayerNorm stands in for its BatchNorm, which would
    make a sample depend on the others drawn with it."""
    inputs = L.Input((input_dim,))
    x = inputs
    for _ in range(2):
        x = L.Concatenate()([x, L.ReLU()(L.LayerNormalization()(L.Dense(hidden)(x)))])
    return tf.keras.Model(inputs, L.Dense(width)(x), name="generator")


class DPTableGAN(AdversarialModel):
    def __init__(self, schema: TableSchema, latent_dim: int = 32, hidden: int = None, seed: int = None,
                 generator_learning_rate: float = 2e-4, **kwargs):
        super().__init__(latent_dim, seed, generator_learning_rate, **kwargs)
        hidden = hidden or HIDDEN
        self.schema = schema
        self.num_classes = len(schema.condition_column.values)
        self.width = sum(column.width for column in schema.features)
        self.generator = residual_generator(latent_dim + self.num_classes, hidden, self.width)
        self.track_average()
        self.discriminator = tf.keras.Sequential([L.InputLayer(input_shape=(self.width + self.num_classes,)),
                                                  L.Dense(hidden), L.LeakyReLU(0.2), L.Dropout(DROPOUT),
                                                  L.Dense(hidden), L.LeakyReLU(0.2), L.Dropout(DROPOUT),
                                                  L.Dense(1)], name="discriminator")

    private_networks = property(lambda self: [self.discriminator])

    def _spans(self):
        start = 0
        for column in self.schema.features:
            yield column, start, start + column.width
            start += column.width

    def _raw(self, z, labels, training):
        network = self.generator if training else self.average_generator
        return network(tf.concat([z, self.one_hot(labels)], -1), training=training)

    def relaxed_rows(self, z, labels, seed, training=True):
        """Generated rows in the encoded space, categories Gumbel-softmax relaxed (what the discriminator sees)."""
        raw = self._raw(z, labels, training)
        gumbel = -tf.math.log(-tf.math.log(tf.random.stateless_uniform(tf.shape(raw), seed, 1e-6, 1 - 1e-6)))
        parts = []
        for column, start, end in self._spans():
            part = raw[:, start:end]
            if column.type == "categorical":
                soft = tf.nn.softmax((part + gumbel[:, start:end]) / TEMPERATURE)
                if HARD:  # straight-through: one-hot forward like the real rows, the relaxed gradient backward
                    soft += tf.stop_gradient(tf.one_hot(tf.argmax(soft, -1), column.width) - soft)
                parts.append(soft)
            else:
                parts.append(tf.tanh(part))
        return tf.concat(parts, -1)

    def discriminate(self, rows, labels, run=None):
        run = run or (lambda network, x: network(x, training=True))
        return run(self.discriminator, tf.concat([rows, self.one_hot(labels)], -1))[:, 0]

    def fake_rows(self, seed, training=True):
        """A fixed number of relaxed generated rows with uniformly drawn conditions (independent of the private
        batch, its size included)."""
        count = self.fake_count()
        z = tf.random.stateless_normal([count, self.latent_dim], seed=seed, alg="philox")
        labels = tf.random.stateless_uniform([count], seed=seed + [0, 1], maxval=self.num_classes, dtype=tf.int32)
        return self.relaxed_rows(z, labels, seed + [0, 2], training), labels

    def generate(self, z, labels=None, training=False):
        """One output per original column: strings for categories (sampled), floats in the declared bounds."""
        if labels is None:
            raise ValueError("the tabular GAN generates rows for given condition labels: pass labels.")
        labels = tf.cast(labels, tf.int32)
        raw = self._raw(z, labels, training)
        seed = tf.stack([tf.cast(tf.reduce_sum(tf.abs(z)) * 1e4, tf.int64), 11])  # a function of z: reproducible
        condition = self.schema.condition_column
        columns = {condition.name: tf.gather(tf.constant(condition.values), labels)}
        for index, (column, start, end) in enumerate(self._spans()):
            part = raw[:, start:end]
            if column.type == "categorical":
                codes = tf.random.stateless_categorical(part, 1, seed=seed + [0, index + 1], dtype=tf.int32)[:, 0]
                columns[column.name] = tf.gather(tf.constant(column.values), codes)
            else:
                columns[column.name] = column.min + (tf.tanh(part[:, 0]) + 1) / 2 * (column.max - column.min)
        return {column.name: columns[column.name] for column in self.schema.columns}

    def get_config(self):
        return {"schema": self.schema.to_dict(), "latent_dim": self.latent_dim}
