"""DP-GAN and DP-CGAN for images: DCGAN-style networks; only the discriminator reads private records, and the
generator learns from it alone (the training step, shared with the tabular GAN, is in models.adversarial).

The conditional variant feeds a one-hot label to the generator beside z and judges with a projection discriminator
(Miyato and Koyama, ICLR 2018): logit = psi(f(x)) + <embed(y), f(x)>, so the label acts on the image features and the
discriminator can tell a "3" labelled 7 from a "3" labelled 3 (a head reading [f(x), one-hot] only adds a per-class
bias, and a generator trained by it ignores its labels). Its generated rows take uniformly drawn labels.
"""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.data.images import DataError
from tfdpgen.models.adversarial import AdversarialModel

L = keras.layers
SHAPES = ((8, 8, 1), (28, 28, 1), (32, 32, 3))


def generator_network(image_shape, input_dim, width: int = 1):
    """The DCGAN-style generator; `width` multiplies its channels (DP-Sinkhorn's is twice as wide)."""
    if image_shape == (8, 8, 1):
        return keras.Sequential([L.InputLayer(input_shape=(input_dim,)), L.Dense(128 * width, activation="relu"),
                                    L.Dense(64, activation="sigmoid"), L.Reshape(image_shape)], name="generator")
    start = 7 if image_shape[0] == 28 else 4
    layers = [L.InputLayer(input_shape=(input_dim,)), L.Dense(start * start * 64 * width, activation="relu"),
              L.Reshape((start, start, 64 * width))]
    if image_shape[0] == 32:
        layers.append(L.Conv2DTranspose(64 * width, 4, strides=2, padding="same", activation="relu"))
    layers += [L.Conv2DTranspose(32 * width, 4, strides=2, padding="same", activation="relu"),
               L.Conv2DTranspose(image_shape[-1], 4, strides=2, padding="same", activation="sigmoid")]
    return keras.Sequential(layers, name="generator")


def discriminator_features(image_shape):
    if image_shape == (8, 8, 1):
        return keras.Sequential([L.InputLayer(input_shape=image_shape), L.Flatten(), L.Dense(128),
                                    L.LeakyReLU(0.2)], name="discriminator_features")
    layers = [L.InputLayer(input_shape=image_shape), L.Conv2D(32, 4, strides=2, padding="same"), L.LeakyReLU(0.2),
              L.Conv2D(64, 4, strides=2, padding="same"), L.LeakyReLU(0.2)]
    if image_shape[0] == 32:
        layers += [L.Conv2D(128, 4, strides=2, padding="same"), L.LeakyReLU(0.2)]
    return keras.Sequential(layers + [L.Flatten()], name="discriminator_features")


class DPGAN(AdversarialModel):
    """A GAN whose discriminator is trained with DP; `num_classes` makes it conditional (DP-CGAN)."""

    def __init__(self, image_shape=(28, 28, 1), latent_dim: int = 32, num_classes: int = None, seed: int = None,
                 generator_learning_rate: float = 2e-4, **kwargs):
        image_shape = tuple(int(size) for size in image_shape)
        if image_shape not in SHAPES:
            raise DataError(f"{type(self).__name__} supports image shapes {list(SHAPES)}, got {image_shape}.")
        super().__init__(latent_dim, seed, generator_learning_rate, **kwargs)
        self.image_shape, self.num_classes = image_shape, num_classes
        extra = num_classes or 0
        self.generator = generator_network(image_shape, latent_dim + extra)
        self.track_average()
        self.features = discriminator_features(image_shape)
        width = self.features.output_shape[-1]
        self.head = keras.Sequential([L.InputLayer(input_shape=(width,)), L.Dense(1)], name="discriminator_head")
        self.label_embedding = None if num_classes is None else keras.Sequential(
            [L.InputLayer(input_shape=(num_classes,)), L.Dense(width, use_bias=False)], name="label_embedding")

    private_networks = property(lambda self: [self.features, self.head] + (
        [] if self.label_embedding is None else [self.label_embedding]))
    def _with_labels(self, tensor, labels):
        return tensor if self.num_classes is None else tf.concat([tensor, self.one_hot(labels)], axis=-1)

    def discriminate(self, images, labels, run=None):
        run = run or (lambda network, x: network(x, training=True))
        features = run(self.features, images)
        logits = run(self.head, features)[:, 0]
        if self.label_embedding is None:
            return logits
        return logits + tf.reduce_sum(run(self.label_embedding, self.one_hot(labels)) * features, axis=-1)

    def random_labels(self, n, seed):
        return tf.random.stateless_uniform([n], seed=seed, maxval=self.num_classes, dtype=tf.int32)

    def fake_rows(self, seed, training):
        """A fixed number of generated samples (the expected batch share) with uniformly drawn labels: nothing in them
        depends on the private batch, not even its size."""
        count = self.fake_count()
        z = tf.random.stateless_normal([count, self.latent_dim], seed=seed, alg="philox")
        labels = None if self.num_classes is None else self.random_labels(count, seed + [0, 1])
        return self.generator(self._with_labels(z, labels), training=training), labels

    def generate(self, z, labels=None):
        """Samples from the generator's moving average."""
        if self.num_classes is not None and labels is None:
            raise ValueError("a conditional GAN generates for given labels: pass labels (one per latent vector).")
        return self.average_generator(self._with_labels(z, labels), training=False)

    def get_config(self):
        return {"image_shape": self.image_shape, "latent_dim": self.latent_dim, "num_classes": self.num_classes}
