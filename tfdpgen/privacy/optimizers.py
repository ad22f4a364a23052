"""TensorFlow Privacy's vectorized DP Keras optimizers, built from PrivacySettings."""
import tensorflow as tf
from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras_vectorized as vectorized

from tfdpgen.privacy.settings import PrivacySettings

DP_OPTIMIZERS = {
    "sgd": vectorized.VectorizedDPKerasSGDOptimizer,
    "adam": vectorized.VectorizedDPKerasAdamOptimizer,
}


def make_dp_optimizer(name: str, settings: PrivacySettings, learning_rate: float, **kwargs):
    """A TF Privacy vectorized DP optimizer that clips each example's gradient to `settings.l2_norm_clip`.

    Its own noise is 0: privacy.noise adds the noise once per global batch (TF Privacy's would be added on every
    replica, and from a seed-dependent stateful op).
    """
    if name not in DP_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(DP_OPTIMIZERS)}, got {name!r}.")
    return DP_OPTIMIZERS[name](
        l2_norm_clip=settings.l2_norm_clip, noise_multiplier=0.0, num_microbatches=None,
        unconnected_gradients_to_zero=True, learning_rate=learning_rate, **kwargs)


def is_dp_optimizer(optimizer) -> bool:
    return isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer) and hasattr(optimizer, "_dp_sum_query")
