"""The private gradient: the one function every generator's train_step calls for a network that reads private records.

Per-example clipping is TensorFlow Privacy's vectorized DP optimizer (per-example Jacobian, each example's gradient
clipped to C in global L2 norm); it is built with noise 0 and the noise comes from `privacy.noise`, once per global
batch. Later engines replace the clipping, not the callers.
"""
import tensorflow as tf

from tfdpgen.privacy.optimizers import is_dp_optimizer


def private_gradients(optimizer, tape: tf.GradientTape, per_example_loss: tf.Tensor, variables, expected_batch_size,
                      noise, step):
    """Clipped, noised gradient of the mean per-example loss with respect to `variables`, for this replica.

    `per_example_loss` has one entry per record of this replica's share of the batch. Returns
    (local sum of clipped gradients + this replica's noise share) / B, where B is the expected *global* batch size
    (q*N): under Poisson sampling the actual size depends on the private data, and the accounting assumes the released
    quantity is (sum of clipped gradients + noise) / B. The optimizer's cross-replica sum completes the release.
    """
    if not is_dp_optimizer(optimizer):
        raise TypeError(f"private_gradients needs a TensorFlow Privacy DP optimizer, got {type(optimizer).__name__}: "
                        "compile the model with PrivacySettings.")
    if per_example_loss.shape.rank != 1:
        raise ValueError(f"the loss must have one value per example (shape [batch]), got shape {per_example_loss.shape}: "
                         "reduce every axis but the batch axis before the private gradient.")
    if optimizer._noise_multiplier != 0:
        raise ValueError("the clipping optimizer must be built with noise_multiplier=0: noise is added once, here.")
    variables = list(variables)
    grads_and_vars = optimizer._compute_gradients(per_example_loss, variables, tape=tape)
    # TF Privacy returns the mean over the examples (microbatches); times their count, the sum of clipped gradients.
    count = tf.cast(tf.shape(per_example_loss)[0], per_example_loss.dtype)
    clipped_sums = [grad * count for grad, _ in grads_and_vars]
    expected = tf.cast(expected_batch_size, per_example_loss.dtype)
    return [(total + share) / expected for total, share in zip(clipped_sums, noise(clipped_sums, step))]
