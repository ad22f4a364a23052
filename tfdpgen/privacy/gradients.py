"""The private gradient: the one function every generator's train_step calls for a network that reads private records.

Today its engine is TensorFlow Privacy's vectorized DP optimizer (per-example Jacobian, clip each example's gradient to
C in global L2 norm, sum, add N(0, (sigma*C)^2) once, divide). Later engines replace the body, not the callers.
"""
import tensorflow as tf

from tfdpgen.privacy.optimizers import is_dp_optimizer


def private_gradients(optimizer, tape: tf.GradientTape, per_example_loss: tf.Tensor, variables, expected_batch_size):
    """Clipped, noised gradient of the mean per-example loss with respect to `variables`.

    `per_example_loss` has one entry per record of the batch. The noised sum is divided by `expected_batch_size`
    (B = q*N), not by the batch's actual size: under Poisson sampling the actual size depends on the private data, and
    the accounting assumes the released quantity is (sum of clipped gradients + noise) / B.
    """
    if not is_dp_optimizer(optimizer):
        raise TypeError(f"private_gradients needs a TensorFlow Privacy DP optimizer, got {type(optimizer).__name__}: "
                        "compile the model with PrivacySettings.")
    if per_example_loss.shape.rank != 1:
        raise ValueError(f"the loss must have one value per example (shape [batch]), got shape {per_example_loss.shape}: "
                         "reduce every axis but the batch axis before the private gradient.")
    variables = list(variables)
    grads_and_vars = optimizer._compute_gradients(per_example_loss, variables, tape=tape)
    # TF Privacy divides the noised sum by the number of microbatches (here: records in the batch); make it B.
    actual_batch_size = tf.cast(tf.shape(per_example_loss)[0], tf.float32)
    scale = actual_batch_size / tf.cast(expected_batch_size, tf.float32)
    return [grad * scale for grad, _ in grads_and_vars]
