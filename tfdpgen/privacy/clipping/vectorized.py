"""TensorFlow Privacy's vectorized clipping (per-example Jacobian, then clip), the reference for the fast engine."""
import tensorflow as tf

from tfdpgen.privacy.optimizers import is_dp_optimizer


class VectorizedClipping:
    """Clipped sums through a TF Privacy vectorized DP optimizer built with noise 0 (noise is added once elsewhere).

    Its clip norm is the optimizer's, fixed: adaptive clipping and DP^2 need the fast engine."""

    def __init__(self, optimizer):
        if not is_dp_optimizer(optimizer):
            raise TypeError(f"the vectorized engine needs a TensorFlow Privacy DP optimizer, got "
                            f"{type(optimizer).__name__}: compile the model with PrivacySettings.")
        if optimizer._noise_multiplier != 0:
            raise ValueError("the clipping optimizer must be built with noise_multiplier=0: noise is added once, in "
                             "privacy.noise.")
        self.optimizer = optimizer

    def clipped_sums(self, tape, per_example_loss, variables, recorder=None, clip=None, scales=None):
        if scales is not None:
            raise ValueError("the vectorized engine cannot precondition per-example gradients (DP^2): use engine='fast'.")
        grads_and_vars = self.optimizer._compute_gradients(per_example_loss, list(variables), tape=tape)
        # TF Privacy returns the mean over the examples (microbatches); times their count, the sum.
        count = tf.cast(tf.shape(per_example_loss)[0], per_example_loss.dtype)
        return [grad * count for grad, _ in grads_and_vars], None
