"""The private gradient: the one function every generator's train_step calls for the networks that read private records.

A clipping engine (privacy.clipping: `fast` or TF Privacy's `vectorized`) gives the sum of per-example gradients, each
clipped to C in global L2 norm (after an optional per-coordinate preconditioning, for DP^2); privacy.noise adds the
noise, once per global batch; the result is divided by the expected global batch size.
"""
import tensorflow as tf


def private_gradients(clipping, tape: tf.GradientTape, per_example_loss: tf.Tensor, variables, recorder,
                      expected_batch_size, noise, step, clip, scales=None):
    """Clipped, noised gradient of the mean per-example loss with respect to `variables`, for this replica, and the
    per-example norms that were clipped (None from the vectorized engine).

    `per_example_loss` has one entry per record of this replica's share of the batch; `clip` is this step's clip norm
    (a float or a scalar tensor); `scales` (one tensor per variable, or None) multiply each per-example gradient
    before clipping. Returns (local sum of clipped gradients + this replica's noise share) / B, where B is the expected
    *global* batch size (q*N): under Poisson sampling the actual size depends on the private data, and the accounting
    assumes the released quantity is (sum of clipped gradients + noise) / B. The optimizer's cross-replica sum
    completes the release.
    """
    if per_example_loss.shape.rank != 1:
        raise ValueError(f"the loss must have one value per example (shape [batch]), got shape {per_example_loss.shape}: "
                         "reduce every axis but the batch axis before the private gradient.")
    clipped_sums, norms = clipping.clipped_sums(tape, per_example_loss, variables, recorder, clip, scales)
    expected = tf.cast(expected_batch_size, per_example_loss.dtype)
    shares = noise(clipped_sums, step, clip)
    return [(total + share) / expected for total, share in zip(clipped_sums, shares)], norms
