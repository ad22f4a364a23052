"""DP-Sinkhorn (after Cao, Bie, Vahdat, Fidler, Kreis, NeurIPS 2021): a generator trained on an entropic optimal
transport loss between generated and real batches, where only the loss's gradient with respect to the generated
samples is privatized.

What is privatized, exactly. For a real batch X (Poisson-sampled, expected size B) and a generated batch Y = G(Z) of
B samples (Z drawn without reading data), the loss is

    L(X, Y) = sum_i l_i(Y) - r * B/2 * S(Y, Y),     l_i(Y) = -eps * log( (1/B) sum_j exp(-c(x_i, y_j) / eps) ),

with c the mean squared distance and S(Y, Y) = mean_j of the same soft-minimum from y_j to Y: l_i is the real
point's entropic-OT dual potential after one Sinkhorn half-step from uniform potentials (the real-to-generated side of
the Sinkhorn divergence, each real point pulled to its soft-nearest generated points), and the S(Y, Y) term is the
debiasing self-term (it spreads the generated points), weighted by r = `repulsion` (below). The only quantity that
reads private records is the gradient G_X = sum_i d l_i / dY, a [B, D] tensor. Each l_i depends on x_i alone (and on
Y), so each record's contribution d l_i / dY is clipped to norm C, the contributions are summed and Gaussian noise
N(0, sigma^2 C^2) is added, through the same DP step as every family (privacy.gradients, divided by B): adding or
removing one record changes the clipped sum by at most C, which is the Poisson-subsampled Gaussian mechanism the
accountant composes. Everything after the release (adding the data-free self-term's gradient and back-propagating
through G) is post-processing.

Unlike the full Sinkhorn divergence, the generated-to-real direction and further Sinkhorn iterations (whose potentials
couple all real records, so one record would move every term) are left out: they have no per-record decomposition.

The entropic regularization `epsilon` (the soft-minimum's temperature, in mean-squared-distance units) is 0.005 by
default: each real point pulls almost only its nearest generated points. At 0.05 the plan spread each pull over many
generated points, which drifted to blurred class means (chosen on public data, the scikit-learn digits placed in 28x28:
without noise 0.90 -> 0.94 train-on-synthetic accuracy, at epsilon 10 0.63 -> 0.90 with the clip norm at 0.01).

The self-term's weight, `repulsion`, is 4 by default where the Sinkhorn divergence has 1. With the real-to-generated
side alone, the generated points of a class bunch together: each is pulled toward the mean of the records that find it
nearest, and the entropic self-term pushes apart only points within a few `epsilon` of each other, so the samples
varied little within a class (the downstream classifier then sees too few ways of writing each digit). Weighting the
data-free self-term more spreads them; it costs no privacy (the release above is unchanged). Chosen on public data, the
scikit-learn digits placed in 28x28 (1,438 trained, 359 held out, 150 epochs at batch 64), by train-on-synthetic
accuracy: without noise 0.841 and 0.861 (two seeds) at weight 1, 0.886 and 0.883 at 2, 0.905 and 0.894 at 4, 0.905 at
8; on the 8x8 digits at epsilon 3 (the default run) 0.894 and 0.872 at 1, 0.911 and 0.944 at 4. Under noise: on the
28x28 digits at epsilon 10 (three seeds) 0.844, 0.861 and 0.889 at 1, 0.866, 0.855 and 0.847 at 2, 0.819 and 0.852 (two
seeds) at 4, within the seeds' spread but lower; at epsilon 3 0.797 and 0.696 at 1, 0.816 and 0.794 at 4. Drawing 4
generated points per record instead lifted it without noise (0.922) but cost it at epsilon 10 (0.783: the noise of 4B
rows reaches the generator): not done.

The generator is twice as wide as the GANs' (`generator_width` 2: 128 and 64 channels at 28x28, 256 hidden units at
8x8). That costs no privacy either: the noise is added to the [B, D] gradient with respect to the generated batch,
whatever the generator's size. Chosen on public data (train-on-synthetic accuracy; one run's figure varies by about
0.016 with 359 held-out digits): on the 28x28 digits at weight 4, 0.897 and 0.903 without noise and 0.866 and 0.847 at
epsilon 10 (width 1: 0.905, 0.894, 0.911 and 0.819, 0.852, 0.861); on the 8x8 digits at epsilon 3 (the default run)
0.933, 0.900 and 0.922 against 0.872, 0.911 and 0.906. Left out: a learning rate falling along a half cosine to 0 (on
the 28x28 digits 0.902 without noise and 0.864 at epsilon 10, means of 3 seeds, but on the 8x8 digits' 660 steps 0.830
against 0.896, width 1), and at width 2 on the 28x28 digits without noise: 300 epochs instead of 150 (0.903, 0.866),
the clip norm kept (0.905, 0.891), width 4 with the cosine (0.914, one seed, in three times the time).

With `num_classes` it is class-conditional, as DP-Sinkhorn's conditional variant: the generator reads a one-hot label
beside z, the generated batch takes a fixed, balanced set of labels (drawn from no record), and every point, real or
generated, is its flattened image beside a scaled one-hot of its label, so the cost adds `label_cost` (in mean squared
distance units) between points of different classes and each real record pulls only the generated points of its own
class. Each l_i still depends on record i alone, so the clipping above is unchanged.
"""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.data.images import DataError
from tfdpgen.models.base import DPGenerativeModel
from tfdpgen.models.gan import SHAPES, generator_network
from tfdpgen.privacy.dp2 import DP2Optimizer
from tfdpgen.privacy.gradients import private_gradients


def mean_squared_distances(a, b):
    """c_ij = ||a_i - b_j||^2 / D for rows of a [n, D] and b [m, D], without forming [n, m, D]."""
    squared = (tf.reduce_sum(tf.square(a), 1)[:, None] + tf.reduce_sum(tf.square(b), 1)[None, :]
               - 2 * tf.matmul(a, b, transpose_b=True))
    return tf.maximum(squared, 0.0) / tf.cast(tf.shape(a)[1], a.dtype)


def soft_min_cost(a, b, epsilon):
    """-eps log mean_j exp(-c(a_i, b_j) / eps) for every row a_i; c = mean squared distance. Returns [len(a)]."""
    count = tf.cast(tf.shape(b)[0], a.dtype)
    return -epsilon * (tf.reduce_logsumexp(-mean_squared_distances(a, b) / epsilon, axis=1) - tf.math.log(count))


class SoftMinClipping:
    """The per-record gradients d l_i / dY in closed form, clipped and summed (the clipping step of privacy.gradients
    for DP-Sinkhorn; the noise and the division stay there). With pi_ij = softmax_j(-c_ij / eps),
    d l_i / dy_j = pi_ij * 2 (y_j - x_i) / D, so ||d l_i / dY||^2 = sum_j pi_ij^2 * 4 c_ij / D, and the clipped sum is
    (2 / D) (sum_i a_ij y_j - sum_i a_ij x_i) with a_ij = s_i pi_ij: nothing of size [records, B, D] is formed."""

    def __init__(self, real, fake, epsilon, weights=None):
        self.real, self.fake, self.epsilon, self.weights = real, fake, epsilon, weights

    def clipped_sums(self, tape, per_example_loss, variables, recorder, clip, scales=None):
        cost = mean_squared_distances(self.real, self.fake)
        size = tf.cast(tf.shape(self.real)[1], cost.dtype)
        plan = tf.nn.softmax(-cost / self.epsilon, axis=1)
        if self.weights is not None:  # padding records contribute nothing
            plan = plan * tf.cast(tf.reshape(self.weights, [-1, 1]), plan.dtype)
        norms = tf.sqrt(tf.reduce_sum(tf.square(plan) * 4 * cost / size, 1))
        scale = tf.minimum(1.0, tf.cast(clip, norms.dtype) / tf.maximum(norms, 1e-12))
        a = scale[:, None] * plan
        clipped = (2 / size) * (tf.reduce_sum(a, 0)[:, None] * self.fake - tf.matmul(a, self.real, transpose_a=True))
        return [clipped], norms


class DPSinkhorn(DPGenerativeModel):
    metric_names = ("loss",)

    def __init__(self, image_shape=(8, 8, 1), latent_dim: int = 32, epsilon: float = 0.005, num_classes: int = None,
                 label_cost: float = 1.0, seed: int = None, repulsion: float = 4.0, generator_width: int = 2,
                 **kwargs):
        image_shape = tuple(int(size) for size in image_shape)
        if image_shape not in SHAPES:
            raise DataError(f"DPSinkhorn supports image shapes {list(SHAPES)}, got {image_shape}.")
        if not repulsion >= 0:
            raise ValueError(f"repulsion weighs the term that spreads the generated points: give a number >= 0 (4 by "
                             f"default; 0 leaves it out), got {repulsion!r}.")
        if not (isinstance(generator_width, int) and generator_width >= 1):
            raise ValueError(f"generator_width multiplies the generator's channels: give a whole number >= 1 (2 by "
                             f"default), got {generator_width!r}.")
        super().__init__(latent_dim=latent_dim, seed=seed, **kwargs)
        self.image_shape, self.epsilon, self.num_classes = image_shape, epsilon, num_classes
        self.repulsion, self.generator_width = repulsion, generator_width
        pixels = 1
        for size in image_shape:
            pixels *= size
        # a one-hot scaled by s adds 2 s^2 / (pixels + classes) to the mean squared distance between two classes
        self.label_scale = 0.0 if num_classes is None else (label_cost * (pixels + num_classes) / 2) ** 0.5
        self.generator = generator_network(image_shape, latent_dim + (num_classes or 0), generator_width)

    private_networks = property(lambda self: [self.generator])
    generator_networks = property(lambda self: [self.generator])

    def compile(self, privacy, *args, engine="fast", **kwargs):
        if engine != "fast":
            raise ValueError("DP-Sinkhorn clips its per-record gradients with respect to the generated batch in closed "
                             "form (SoftMinClipping), not through TF Privacy's optimizer: use engine='fast'.")
        super().compile(privacy, *args, engine=engine, **kwargs)
        if isinstance(self.optimizer, DP2Optimizer):
            raise ValueError("DP^2 preconditions per-example gradients of the parameters, but DP-Sinkhorn privatizes "
                             "the gradient with respect to the generated batch: use dp-sgd or dp-adam (fixed or "
                             "adaptive clipping).")

    def fake_labels(self):
        """The generated batch's labels: balanced over the classes, the same every step (nothing read from data)."""
        return None if self.num_classes is None else tf.range(self.privacy.batch_size) % self.num_classes

    def fake_batch(self, training):
        # One generated batch for the whole global step: the same on every replica (no replica id in its seed).
        seed = tf.stack([self.random_key + 1, tf.cast(self.dp_steps, tf.int64)])
        z = tf.random.stateless_normal([self.privacy.batch_size, self.latent_dim], seed=seed, alg="philox")
        return self.generate(z, self.fake_labels(), training=training)

    def points(self, images, labels):
        """Rows the cost is computed on: the flattened images, beside their scaled one-hot labels if conditional."""
        flat = tf.reshape(tf.cast(images, tf.float32), [tf.shape(images)[0], -1])
        if self.num_classes is None:
            return flat
        return tf.concat([flat, self.label_scale * self.one_hot(labels)], -1)

    def per_example_terms(self, x, y, training, fake=None):
        fake = self.fake_batch(training) if fake is None else fake
        return {"loss": soft_min_cost(self.points(x, y), self.points(fake, self.fake_labels()), self.epsilon)}

    def self_term(self, fake):
        points = self.points(fake, self.fake_labels())
        return 0.5 * self.repulsion * self.privacy.batch_size * tf.reduce_mean(
            soft_min_cost(points, points, self.epsilon))

    def private_fake_gradient(self, x, weights, fake, clip=None, labels=None):
        """The released gradient with respect to the generated batch: (sum_i clip(d l_i / dY, C) + noise) / B, this
        replica's share (its image part: the label columns are released too, and dropped); also the per-example loss
        and norms."""
        real = self.points(x, labels)
        flat = self.points(fake, self.fake_labels())
        loss = soft_min_cost(real, flat, self.epsilon)
        if weights is not None:
            loss = loss * tf.cast(tf.reshape(weights, [-1]), loss.dtype)
        gradients, norms = private_gradients(SoftMinClipping(real, flat, self.epsilon, weights), None, loss, [flat],
                                             None, self.privacy.batch_size, self.dp_noise, self.dp_steps.read_value(),
                                             self.privacy.l2_norm_clip if clip is None else clip)
        pixels = tf.reduce_prod(tf.shape(fake)[1:])
        return tf.reshape(gradients[0][:, :pixels], tf.shape(fake)), loss, norms

    def released_gradient(self, x, y, weights, fake, clip):
        """A step's one release, (sum_i clip(d l_i / dY, C) + noise) / B over the global batch: this replica's share
        summed with the others' (the same on every replica); also this replica's per-example loss and norms."""
        released, loss, norms = self.private_fake_gradient(x, weights, fake, clip, y)
        released = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, released)
        return released, loss, norms

    def train_step(self, data):
        x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as generator_tape:
            fake = self.fake_batch(True)
        step = self.dp_steps.read_value()
        clip = self.step_clip_norm()
        released, loss, norms = self.released_gradient(x, y, weights, fake, clip)
        with tf.GradientTape() as self_tape:
            self_tape.watch(fake)
            repulsion = self.self_term(fake)
        total = released - self_tape.gradient(repulsion, fake) / self.privacy.batch_size
        variables = self.generator.trainable_variables
        gradients = generator_tape.gradient(fake, variables, output_gradients=total)
        # Every replica holds the same update; the optimizer sums replicas, so each contributes 1/R of it.
        replicas = self.distribute_strategy.num_replicas_in_sync
        self.optimizer.apply_gradients(zip([g / replicas for g in gradients], variables))
        self.end_dp_step([released], norms, weights, step, clip)
        self.trackers["loss"].update_state(loss, sample_weight=weights)
        return self.step_logs()

    def generate(self, z, labels=None, training=False):
        if self.num_classes is None:
            return self.generator(z, training=training)
        if labels is None:
            raise ValueError("a conditional DP-Sinkhorn generates for given labels: pass labels (one per latent vector).")
        return self.generator(tf.concat([z, self.one_hot(labels, z.dtype)], -1), training=training)

    def get_config(self):
        return {"image_shape": self.image_shape, "latent_dim": self.latent_dim, "epsilon": self.epsilon,
                "num_classes": self.num_classes, "repulsion": self.repulsion,
                "generator_width": self.generator_width}
