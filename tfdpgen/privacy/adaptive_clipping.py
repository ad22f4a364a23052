"""Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021): the clip norm follows a target quantile of the per-example gradient norms.

The mathematics of TensorFlow Privacy's QuantileAdaptiveClipSumQuery / QuantileEstimatorQuery (geometric update), with
the state in a tf.Variable of the model so that it works in graph mode, under jit_compile and tf.distribute, and is
checkpointed. Each step, with clip C_t used for the clipped sum:

    b     = sum_i ([||g_i|| <= C_t] - 1/2) + N(0, sigma_b^2)      (centered count: sensitivity 1/2)
    frac  = clip(b / B + 1/2, 0, 1)                                (B: the expected batch size)
    C_t+1 = C_t * exp(-eta * (frac - gamma))                       (gamma: target quantile, eta: clip learning rate)

The count is a second Gaussian release on the same sampled batch; privacy.accounting.sum_noise_multiplier gives the
sum the noise that makes both together one Gaussian at the noise multiplier the accounting uses.
"""
import tensorflow as tf

from tfdpgen.privacy.noise import GaussianNoise
from tfdpgen.privacy.settings import PrivacySettings


class AdaptiveClipNorm:
    def __init__(self, clip_norm: tf.Variable, settings: PrivacySettings, num_replicas: int, key: int):
        self.clip_norm = clip_norm
        self.target_quantile = settings.target_quantile
        self.learning_rate = settings.clip_learning_rate
        self.expected_batch_size = settings.batch_size
        self.count_noise = GaussianNoise(settings.count_stddev, num_replicas, key)

    def update(self, norms, present, step, clip):
        """Move the clip norm from `clip` (this step's) toward the target quantile of `norms`; `present` is False for
        padding records. Call in replica context: the noised counts of all replicas are summed before the update."""
        below = tf.where(present, tf.cast(norms <= tf.cast(clip, norms.dtype), tf.float32) - 0.5, 0.0)
        local = tf.reduce_sum(below)
        local += self.count_noise([local], step)[0]
        count = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)
        fraction = tf.clip_by_value(count / self.expected_batch_size + 0.5, 0.0, 1.0)
        return self.clip_norm.assign(tf.cast(clip, tf.float32) *
                                     tf.exp(-self.learning_rate * (fraction - self.target_quantile)))
