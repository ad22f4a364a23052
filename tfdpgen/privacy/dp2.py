"""DP^2: differentially private adaptive optimization with delayed preconditioners (Li, Zaheer, Liu, Reddi, McMahan,
Smith, ICLR 2023, arXiv 2212.00309, Algorithm 1; the authors' DP^2-RMSProp trainer).

Training alternates phases of s steps (s = `delay`), counted by the optimizer's iterations t:

* DP-SGD phase, t mod 2s < s: the released gradient is g~_t = (sum_i clip(g_i, C1) + N(0, sigma^2 C1^2)) / B, the
  update theta <- theta - alpha1 g~_t, and the accumulator G <- G + g~_t. At the phase's last step (t mod 2s = s - 1)
  the preconditioner takes the square of the mean of the phase's s released gradients,
      RMSProp:  v <- beta v + (1 - beta) (G / s)^2          AdaGrad:  v <- v + (G / s)^2,
  and G <- 0.
* adaptive phase, s <= t mod 2s < 2s: each *per-example* gradient is preconditioned before clipping,
      g~_t = (sum_i clip(g_i / (sqrt(v) + eps), C2) + N(0, sigma^2 C2^2)) / B,   theta <- theta - alpha2 g~_t.

Both phases are one Gaussian release at the same noise multiplier sigma relative to their clip norm, and v is built
only from released (noised) gradients, which are all this optimizer ever receives: the accounting is DP-SGD's. The
per-example preconditioning happens in the DP step (models.base asks `per_example_scales` and `clip_norm` before it
clips); this optimizer holds the state (slots v and G, checkpointed with it) and applies the update.
"""
import tensorflow as tf
import tf_keras as keras

VARIANTS = ("rmsprop", "adagrad")


class DP2Optimizer(keras.optimizers.legacy.Optimizer):
    def __init__(self, learning_rate=0.01, adaptive_learning_rate=None, delay=100, beta=0.9, epsilon=1e-8,
                 adaptive_clip=None, variant="rmsprop", name="DP2", **kwargs):
        """`learning_rate` (alpha1) for the DP-SGD phases, `adaptive_learning_rate` (alpha2, default alpha1) for the
        adaptive ones; `delay` s steps per phase; `adaptive_clip` C2 (default: the DP-SGD clip norm C1)."""
        if not (isinstance(delay, int) and delay >= 1):
            raise ValueError(f"the DP^2 delay must be a whole number of steps >= 1, got {delay!r}.")
        if variant not in VARIANTS:
            raise ValueError(f"DP^2 variant must be one of {VARIANTS}, got {variant!r}.")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta!r}.")
        if adaptive_clip is not None and not adaptive_clip > 0:
            raise ValueError(f"adaptive_clip must be positive, got {adaptive_clip!r}.")
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", learning_rate)
        self._set_hyper("adaptive_learning_rate", learning_rate if adaptive_learning_rate is None
                        else adaptive_learning_rate)
        self._set_hyper("beta", beta)
        self.delay, self.epsilon, self.adaptive_clip, self.variant = delay, epsilon, adaptive_clip, variant

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "preconditioner")
            self.add_slot(var, "accumulator")

    def adaptive_phase(self):
        return (self.iterations // self.delay) % 2 == 1

    def clip_norm(self, sgd_clip):
        """The clip norm of the coming step: C1 in a DP-SGD phase, C2 in an adaptive one."""
        adaptive_clip = sgd_clip if self.adaptive_clip is None else self.adaptive_clip
        return tf.where(self.adaptive_phase(), tf.cast(adaptive_clip, tf.float32), tf.cast(sgd_clip, tf.float32))

    def per_example_scales(self, variables):
        """What multiplies each per-example gradient before clipping: 1 / (sqrt(v) + eps) in an adaptive phase, 1
        otherwise."""
        with tf.init_scope():
            self._create_all_weights(variables)
        adaptive = self.adaptive_phase()
        return [tf.where(adaptive, 1.0 / (tf.sqrt(self.get_slot(v, "preconditioner")) + self.epsilon),
                         tf.ones_like(v)) for v in variables]

    def _resource_apply_dense(self, grad, var, apply_state=None):
        dtype = var.dtype.base_dtype
        position = self.iterations % (2 * self.delay)
        adaptive = position >= self.delay
        preconditioner, accumulator = self.get_slot(var, "preconditioner"), self.get_slot(var, "accumulator")
        accumulated = tf.where(adaptive, accumulator, accumulator + grad)
        mean_square = tf.square(accumulated / self.delay)
        beta = self._get_hyper("beta", dtype)
        refreshed = (beta * preconditioner + (1 - beta) * mean_square if self.variant == "rmsprop" else
                     preconditioner + mean_square)
        phase_end = tf.equal(position, self.delay - 1)
        learning_rate = tf.where(adaptive, self._get_hyper("adaptive_learning_rate", dtype),
                                 self._get_hyper("learning_rate", dtype))
        return tf.group(preconditioner.assign(tf.where(phase_end, refreshed, preconditioner)),
                        accumulator.assign(tf.where(phase_end, tf.zeros_like(accumulated), accumulated)),
                        var.assign_sub(learning_rate * grad))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        return self._resource_apply_dense(tf.math.unsorted_segment_sum(grad, indices, tf.shape(var)[0]), var,
                                          apply_state)

    def get_config(self):
        config = super().get_config()
        config.update(learning_rate=self._serialize_hyperparameter("learning_rate"),
                      adaptive_learning_rate=self._serialize_hyperparameter("adaptive_learning_rate"),
                      beta=self._serialize_hyperparameter("beta"), delay=self.delay, epsilon=self.epsilon,
                      adaptive_clip=self.adaptive_clip, variant=self.variant)
        return config
