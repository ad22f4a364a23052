"""DP-VAE: encoder and decoder both read private records, so both are trained with DP-SGD on the per-example ELBO.

With `num_classes` it is a conditional VAE (Sohn et al., NeurIPS 2015): the label enters both networks, as one-hot maps
stacked on the image's channels in the encoder (a dense encoder reads the one-hot beside the flattened pixels) and as
a one-hot beside z in the decoder, so the decoder must draw the digit the label names: p(x | z, y), q(z | x, y).
"""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.data.images import DataError
from tfdpgen.models.base import DPGenerativeModel

SUPPORTED_SHAPES = {(28, 28, 1): "conv", (8, 8, 1): "dense"}
# The latent size when none is given: under DP noise a small latent is used fully, so samples from the prior look like
# the data (on scikit-learn's digits, latent 4 gave 0.89 train-on-synthetic accuracy where 16 gave 0.66-0.84; on the
# same digits placed in 28x28 images for the convolutional networks, at epsilon 10: 0.58 with 4, 0.56 with 8, 0.52
# with 16, and without noise 4 and 16 tie, 0.86 and 0.87).
DEFAULT_LATENT = 4


def _conv_networks(latent_dim, label_width=0):
    encoder = keras.Sequential([
        keras.layers.InputLayer(input_shape=(28, 28, 1 + label_width)),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(2 * latent_dim),
    ], name="encoder")
    decoder = keras.Sequential([
        keras.layers.InputLayer(input_shape=(latent_dim + label_width,)),
        keras.layers.Dense(7 * 7 * 32, activation="relu"),
        keras.layers.Reshape((7, 7, 32)),
        keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),
    ], name="decoder")
    return encoder, decoder


def _dense_networks(image_shape, latent_dim, label_width=0, hidden=128):
    pixels = 1
    for size in image_shape:
        pixels *= size
    encoder = keras.Sequential([
        keras.layers.InputLayer(input_shape=(pixels + label_width,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(2 * latent_dim),
    ], name="encoder")
    decoder = keras.Sequential([
        keras.layers.InputLayer(input_shape=(latent_dim + label_width,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(pixels),
        keras.layers.Reshape(image_shape),
    ], name="decoder")
    return encoder, decoder


class DPVAE(DPGenerativeModel):
    """A variational autoencoder for images in [0, 1]: convolutional for 28x28x1, dense for 8x8x1.

    Per-example loss: the negative ELBO, -log p(x|z) (Bernoulli pixels, summed) + KL(q(z|x) || N(0, I)), in nats.
    Samples are the decoder's pixel means for z ~ N(0, I) (and the given labels, when conditional).
    """

    metric_names = ("loss", "reconstruction", "kl")

    def __init__(self, image_shape=(28, 28, 1), latent_dim: int = None, num_classes: int = None, seed: int = None,
                 **kwargs):
        image_shape = tuple(int(size) for size in image_shape)
        if image_shape not in SUPPORTED_SHAPES:
            raise DataError(f"DPVAE supports image shapes {list(SUPPORTED_SHAPES)}, got {image_shape}: resize or "
                             "pad the images, or add a network for that shape.")
        latent_dim = latent_dim or DEFAULT_LATENT
        super().__init__(latent_dim=latent_dim, seed=seed, **kwargs)
        self.image_shape, self.num_classes = image_shape, num_classes
        width = num_classes or 0
        if SUPPORTED_SHAPES[image_shape] == "conv":
            self.encoder, self.decoder = _conv_networks(latent_dim, width)
        else:
            self.encoder, self.decoder = _dense_networks(image_shape, latent_dim, width)

    def encoder_input(self, x, labels):
        """The image (with one-hot label maps on its channels, if conditional); flattened for the dense encoder."""
        if SUPPORTED_SHAPES[self.image_shape] == "dense":
            x = tf.reshape(x, [-1, self.encoder.input_shape[-1] - (self.num_classes or 0)])
        if self.num_classes is None:
            return x
        one_hot = self.one_hot(labels, x.dtype)
        if len(x.shape) == 4:
            one_hot = tf.broadcast_to(one_hot[:, None, None, :], tf.concat([tf.shape(x)[:3], [self.num_classes]], 0))
        return tf.concat([x, one_hot], -1)

    def decoder_input(self, z, labels):
        if self.num_classes is None:
            return z
        return tf.concat([z, self.one_hot(labels, z.dtype)], -1)

    @property
    def private_networks(self):
        return [self.encoder, self.decoder]

    @property
    def generator_networks(self):
        return [self.decoder]

    def call(self, x, labels=None, training=False):
        mean, _ = tf.split(self.encoder(self.encoder_input(x, labels), training=training), 2, axis=-1)
        return tf.sigmoid(self.decoder(self.decoder_input(mean, labels), training=training))

    def per_example_terms(self, x, y, training):
        mean, log_var = tf.split(self.run(self.encoder, self.encoder_input(x, y), training), 2, axis=-1)
        z = mean + tf.exp(0.5 * log_var) * tf.random.stateless_normal(tf.shape(mean), seed=self.step_seed(), alg="philox")
        logits = tf.reshape(self.run(self.decoder, self.decoder_input(z, y), training), tf.shape(x))
        reconstruction = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=[1, 2, 3])
        kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var, axis=1)
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}

    def generate(self, z, labels=None):
        if self.num_classes is not None and labels is None:
            raise ValueError("a conditional VAE generates for given labels: pass labels (one per latent vector).")
        return tf.sigmoid(self.decoder(self.decoder_input(z, labels), training=False))

    def get_config(self):
        return {"image_shape": self.image_shape, "latent_dim": self.latent_dim, "num_classes": self.num_classes}
