"""Optimizers for DP training: plain Keras optimizers for the fast engine, TF Privacy's vectorized DP optimizers
(built with noise 0: noise is added once per global batch in privacy.noise) for the `vectorized` engine."""
import tensorflow as tf
from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras_vectorized as vectorized

from tfdpgen.privacy.settings import PrivacySettings

OPTIMIZERS = {"sgd": tf.keras.optimizers.legacy.SGD, "adam": tf.keras.optimizers.legacy.Adam}
DP_OPTIMIZERS = {"sgd": vectorized.VectorizedDPKerasSGDOptimizer, "adam": vectorized.VectorizedDPKerasAdamOptimizer}
ENGINES = ("fast", "vectorized")


def make_optimizer(name: str, settings: PrivacySettings, learning_rate: float, engine: str = "fast", **kwargs):
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}.")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if engine == "fast":
        return OPTIMIZERS[name](learning_rate=learning_rate, **kwargs)
    return DP_OPTIMIZERS[name](l2_norm_clip=settings.l2_norm_clip, noise_multiplier=0.0, num_microbatches=None,
                               unconnected_gradients_to_zero=True, learning_rate=learning_rate, **kwargs)


def is_dp_optimizer(optimizer) -> bool:
    return isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer) and hasattr(optimizer, "_dp_sum_query")
