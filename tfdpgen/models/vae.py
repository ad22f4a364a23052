"""DP-VAE: encoder and decoder both read private records, so both are trained with DP-SGD on the per-example ELBO."""
import tensorflow as tf

from tfdpgen.data.images import DataError
from tfdpgen.models.base import DPGenerativeModel

SUPPORTED_SHAPES = {(28, 28, 1): "conv", (8, 8, 1): "dense"}


def _conv_networks(latent_dim):
    encoder = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(28, 28, 1)),
        tf.keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(2 * latent_dim),
    ], name="encoder")
    decoder = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(latent_dim,)),
        tf.keras.layers.Dense(7 * 7 * 32, activation="relu"),
        tf.keras.layers.Reshape((7, 7, 32)),
        tf.keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
        tf.keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),
    ], name="decoder")
    return encoder, decoder


def _dense_networks(image_shape, latent_dim, hidden=128):
    pixels = 1
    for size in image_shape:
        pixels *= size
    encoder = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=image_shape),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(hidden, activation="relu"),
        tf.keras.layers.Dense(2 * latent_dim),
    ], name="encoder")
    decoder = tf.keras.Sequential([
        tf.keras.layers.InputLayer(input_shape=(latent_dim,)),
        tf.keras.layers.Dense(hidden, activation="relu"),
        tf.keras.layers.Dense(pixels),
        tf.keras.layers.Reshape(image_shape),
    ], name="decoder")
    return encoder, decoder


class DPVAE(DPGenerativeModel):
    """A variational autoencoder for images in [0, 1]: convolutional for 28x28x1, dense for 8x8x1.

    Per-example loss: the negative ELBO, -log p(x|z) (Bernoulli pixels, summed) + KL(q(z|x) || N(0, I)), in nats.
    Samples are the decoder's pixel means for z ~ N(0, I).
    """

    metric_names = ("loss", "reconstruction", "kl")

    def __init__(self, image_shape=(28, 28, 1), latent_dim: int = 16, seed: int = None, **kwargs):
        image_shape = tuple(int(size) for size in image_shape)
        if image_shape not in SUPPORTED_SHAPES:
            raise DataError(f"DPVAE supports image shapes {list(SUPPORTED_SHAPES)}, got {image_shape}: resize or "
                             "pad the images, or add a network for that shape.")
        super().__init__(latent_dim=latent_dim, seed=seed, **kwargs)
        self.image_shape = image_shape
        if SUPPORTED_SHAPES[image_shape] == "conv":
            self.encoder, self.decoder = _conv_networks(latent_dim)
        else:
            self.encoder, self.decoder = _dense_networks(image_shape, latent_dim)

    @property
    def private_networks(self):
        return [self.encoder, self.decoder]

    @property
    def generator_networks(self):
        return [self.decoder]

    def call(self, x, training=False):
        mean, _ = tf.split(self.encoder(x, training=training), 2, axis=-1)
        return tf.sigmoid(self.decoder(mean, training=training))

    def per_example_terms(self, x, y, training):
        mean, log_var = tf.split(self.run(self.encoder, x, training), 2, axis=-1)
        z = mean + tf.exp(0.5 * log_var) * tf.random.stateless_normal(tf.shape(mean), seed=self.step_seed(), alg="philox")
        logits = self.run(self.decoder, z, training)
        reconstruction = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=[1, 2, 3])
        kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var, axis=1)
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}

    def generate(self, z, labels=None):
        return tf.sigmoid(self.decoder(z, training=False))

    def get_config(self):
        return {"image_shape": self.image_shape, "latent_dim": self.latent_dim}
