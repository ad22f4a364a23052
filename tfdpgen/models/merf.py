"""DP-MERF: a class-conditional image generator fitted to one noisy release of random-feature mean embeddings.

After Harder, Adamczewski and Park, "DP-MERF: Differentially Private Mean Embeddings with Random Features for
Practical Privacy-Preserving Data Generation" (AISTATS 2021; github frhrdr/Differentially-Private-Mean-Embeddings-
with-Random-Features-for-Synthetic-Data-Generation). Each image x (flattened) maps to random Fourier features of a
Gaussian kernel, phi(x) = [cos(W x), sin(W x)] / sqrt(m) with W's m rows drawn N(0, I / bandwidth^2) from a public
seed, so ||phi(x)|| = 1 (computed for the release in float64, just under 1). A record (x, y) contributes
psi(x, y) = [a phi(x), b] in the row of its class y (a^2 + b^2 = 1; the last entry counts the class), so adding or
removing a record moves the [classes, 2m + 1] sum of contributions by at most 1 in L2 norm: the whole data set is read
once, by one Gaussian release of that sum (privacy.releases). Everything after it is post-processing: the class
means are the released sums over the released counts, and the generator (the conditional GAN's network) is fitted so
that, per class, the mean features of its samples match them: the kernel's maximum mean discrepancy, approximated by
the random features.

The kernel is chosen before any private record is read: bandwidth^2 is the median heuristic (the median squared
distance between two images, Gretton et al. 2012) computed on scikit-learn's public digits, per pixel, times the
image's pixel count: 115.3 for 28x28 images. DP-MERF's MNIST code uses 127, its median heuristic on MNIST itself, one
of the private sets tfdpgen trains on. Adam at 1e-3 here for the conv generator (theirs: 1e-2 for an MLP).
"""
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfdpgen.data.images import DataError
from tfdpgen.models.base import draw_samples
from tfdpgen.models.gan import SHAPES, generator_network
from tfdpgen.privacy.releases import gaussian_release

COUNT_WEIGHT = 0.2  # b: the class-count entry's share of each contribution (its noise is sigma / b in counts)
# median_heuristic(load_images("digits").images), exactly: the digits are sixteenths, so it is exact in floating point
DIGITS_BANDWIDTH_SQUARED_PER_PIXEL = 0.1470947265625
EMBEDDINGS = "class-conditional random-feature mean embeddings (sums of unit-norm rows, and class counts)"
# The fit is post-processing, so it takes what it needs. DP-MERF's MNIST setting is about 10,000 features (5,000
# frequencies, a cosine and a sine each); on scikit-learn's public digits 5,000 frequencies beat 2,000 (0.848 against
# 0.830 at epsilon 3), and 6,000 fit steps beat 3,000 (benchmarks/merf_bandwidth.py, 2 seeds: 0.936 against 0.923 at
# epsilon 10, 0.857 against 0.850 at epsilon 1). Neither was chosen on the private split.
DEFAULT_FIT_STEPS = 6000
DEFAULT_FREQUENCIES = 5000


def median_heuristic(images) -> float:
    """The median squared L2 distance between two different images of `images` [n, ...], per pixel (values in
    [0, 1]). For public images only: the kernel must not depend on the private ones."""
    flat = np.reshape(np.asarray(images, np.float64), [len(images), -1])
    norms = np.sum(flat ** 2, axis=1)
    distances = norms[:, None] + norms[None, :] - 2 * flat @ flat.T
    return float(np.median(distances[np.triu_indices(len(flat), 1)]) / flat.shape[1])


class DPMERF(keras.Model):
    """`release_statistic(images, labels)` is the private sum (sensitivity 1); `set_release(sums)` takes its noisy
    release; `fit(steps)` fits the generator to it; `generate(z, labels)` draws images in [0, 1]."""

    sensitivity = 1.0

    def __init__(self, image_shape=(28, 28, 1), num_classes: int = 10, latent_dim: int = 32, frequencies: int = 5000,
                 bandwidth: float = None, feature_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        image_shape = tuple(int(size) for size in image_shape)
        if image_shape not in SHAPES:
            raise DataError(f"DPMERF supports image shapes {list(SHAPES)}, got {image_shape}.")
        if not num_classes or num_classes < 2:
            raise DataError("DP-MERF is class-conditional: the data needs labels of at least two classes.")
        self.image_shape, self.num_classes, self.latent_dim = image_shape, int(num_classes), int(latent_dim)
        self.pixels = int(np.prod(image_shape))
        self.frequencies, self.feature_seed = int(frequencies), int(feature_seed)
        self.bandwidth = float(bandwidth or math.sqrt(DIGITS_BANDWIDTH_SQUARED_PER_PIXEL * self.pixels))
        # Public: drawn from a public seed, nothing about the data (the kernel is chosen before the data is read).
        self.projection64 = np.random.default_rng(self.feature_seed).normal(
            size=(self.pixels, self.frequencies)) / self.bandwidth
        self.projection = tf.constant(self.projection64, tf.float32)
        self.generator = generator_network(image_shape, self.latent_dim + self.num_classes)
        # What was released (kept, so the run's checkpoint shows it); the per-class targets are read from it.
        self.release = tf.Variable(tf.zeros([self.num_classes, 2 * self.frequencies + 1], tf.float64), trainable=False,
                                   name="release")
        self._optimizer = None

    generator_networks = property(lambda self: [self.generator])

    def features(self, images):
        """phi(x) [n, 2m], each row of norm 1."""
        projected = tf.matmul(tf.reshape(tf.cast(images, tf.float32), [-1, self.pixels]), self.projection)
        return tf.concat([tf.cos(projected), tf.sin(projected)], -1) / math.sqrt(self.frequencies)

    def release_features(self, images) -> np.ndarray:
        """phi(x) [n, 2m] for the release, in float64 and scaled to norm 1 - 1e-12, so that a record's contribution
        stays within the sensitivity after rounding (float32 rows reach 1 + 7e-9)."""
        projected = np.reshape(np.asarray(images, np.float64), [-1, self.pixels]) @ self.projection64
        features = np.concatenate([np.cos(projected), np.sin(projected)], -1)
        return features * ((1 - 1e-12) / np.linalg.norm(features, axis=-1, keepdims=True))

    def release_statistic(self, images, labels, chunk: int = 1000) -> np.ndarray:
        """sum_i psi(x_i, y_i) as a [classes, 2m + 1] array: row y_i gets [a phi(x_i), b]. One record moves it by
        at most `sensitivity` (1) in L2 norm."""
        a = math.sqrt(1 - COUNT_WEIGHT ** 2)
        sums = np.zeros([self.num_classes, 2 * self.frequencies + 1])
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        for start in range(0, len(labels), chunk):
            features = a * self.release_features(images[start:start + chunk])
            np.add.at(sums[:, :-1], labels[start:start + chunk], features)
        sums[:, -1] = COUNT_WEIGHT * np.bincount(labels, minlength=self.num_classes)
        return sums

    def set_release(self, sums: np.ndarray) -> np.ndarray:
        """Keep the (noisy) sums; returns the class counts read from them."""
        self.release.assign(sums)
        return self.counts().numpy()

    def counts(self):
        """The class counts the release holds (at least 1 each)."""
        return tf.maximum(self.release[:, -1] / COUNT_WEIGHT, 1.0)

    def targets(self):
        """Per-class mean features from the release: its feature sums over its counts [classes, 2m]."""
        features = self.release[:, :-1] / math.sqrt(1 - COUNT_WEIGHT ** 2)
        return tf.cast(features / self.counts()[:, None], tf.float32)

    def labelled(self, z, labels):
        return tf.concat([tf.cast(z, tf.float32), tf.one_hot(tf.reshape(labels, [-1]), self.num_classes)], -1)

    def fit(self, steps: int = 3000, per_class: int = 50, learning_rate: float = 1e-3, seed: int = 0, verbose=1):
        """Fit the generator to the targets: per step, `per_class` samples of every class, loss
        sum_c ||mean phi(G(z, c)) - target_c||^2 (reads only the released targets)."""
        if self._optimizer is None:
            self._optimizer = keras.optimizers.legacy.Adam(learning_rate)
        labels = tf.repeat(tf.range(self.num_classes), per_class)

        @tf.function
        def step(step_seed):
            z = tf.random.stateless_normal([len(labels), self.latent_dim], seed=step_seed)
            with tf.GradientTape() as tape:
                means = tf.math.unsorted_segment_mean(self.features(self.generator(self.labelled(z, labels),
                                                                                   training=True)),
                                                      labels, self.num_classes)
                loss = tf.reduce_sum(tf.square(means - self.targets()))
            variables = self.generator.trainable_variables
            self._optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        progress = keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=["mmd"])
        for index in range(steps):
            loss = step(tf.constant([seed, index], tf.int64))
            progress.update(index + 1, [("mmd", float(loss))] if index % 50 == 0 or index + 1 == steps else None)
        return float(loss)

    def record_losses(self, images, labels) -> np.ndarray:
        """-<phi(x), target_y>: a record whose features agree with its class's released mean scores low (the
        statistic a membership attack thresholds)."""
        features = self.features(images)
        return -tf.reduce_sum(features * tf.gather(self.targets(), tf.reshape(labels, [-1])), -1).numpy()

    def generate(self, z, labels=None):
        if labels is None:
            raise ValueError("DP-MERF generates for given labels: pass labels (one per latent vector).")
        return self.generator(self.labelled(z, labels), training=False)

    def sample(self, num_samples: int, seed: int = 0, labels=None):
        """`num_samples` images; `labels` default to 0, 1, ..., cycling over classes."""
        return draw_samples(self, num_samples, seed, labels)

    release_stream = (17,)  # the release's noise stream under the run's secret key, apart from other families'
    method = ("DP-MERF (Harder et al. 2021): one release of random-feature mean embeddings; a generator fitted to "
              "it")

    def check_release(self, fit_steps=DEFAULT_FIT_STEPS) -> None:
        """Nothing to refuse: the fit's settings are checked where the run is configured."""

    def release_and_fit(self, data, train, budget, rng, ledger, seed=0, fit_steps=DEFAULT_FIT_STEPS, verbose=1):
        """The run's only access to the private images `data.images[train]`: one Gaussian release of their
        embeddings' sum spending `budget` (a privacy.accounting.ReleaseBudget; None: no noise, a non-private run),
        then the fit. Returns report fields."""
        sums = self.release_statistic(data.images[train], data.labels[train])
        if budget is not None:
            sums = gaussian_release(sums, budget.single_gaussian_stddev(self.sensitivity), self.sensitivity, rng,
                                    ledger, EMBEDDINGS)
        counts = self.set_release(sums)
        if verbose:
            spent = (f"epsilon {ledger.epsilon(budget.delta):.3g} spent, all of it; the fit is post-processing"
                     if budget is not None else "no noise: not DP")
            print(f"released the embeddings ({spent}); class counts: " + ", ".join(f"{count:.0f}" for count in counts))
        self.fit(fit_steps, seed=seed, verbose=verbose)
        return {}

    def describe_release(self, options) -> str:
        return (f"one release of {2 * self.frequencies} random features per class, then "
                f"{options.get('fit_steps', DEFAULT_FIT_STEPS)} fitting steps")

    @staticmethod
    def privacy_text(report: dict) -> str:
        if report["epsilon"] is None:
            return "No noise was added (--noise-multiplier 0): no differential privacy statement applies.\n"
        release = report["releases"][0]
        return (f"This run read the {report['dataset_size']} private images once: one Gaussian release of their "
                f"{EMBEDDINGS} (L2 sensitivity {release['sensitivity']:g}, noise standard deviation "
                f"{release['stddev']:.6g}), rho = {report['rho']:.6g} zero-concentrated DP. By dp_accounting's "
                f"{report['composed_by'].upper()} accountant the run satisfies ({report['epsilon']:.6g}, "
                f"{report['delta']:.0e})-differential privacy for adding or removing one record (target epsilon "
                f"{report['target_epsilon']}). The generator was fitted to the release alone (post-processing). The "
                "label set, image shape and the random features (a public seed) are public and not protected.\n")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        return {"image_shape": self.image_shape, "num_classes": self.num_classes, "latent_dim": self.latent_dim,
                "frequencies": self.frequencies, "bandwidth": self.bandwidth, "feature_seed": self.feature_seed}
