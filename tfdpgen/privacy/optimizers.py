"""Optimizers for DP training, by name: plain Keras optimizers for the fast engine (they only ever see released, noised
gradients), TF Privacy's vectorized DP optimizers (built with noise 0: noise is added once per global batch in
privacy.noise) for the `vectorized` engine, and DP^2 (privacy.dp2), whose preconditioning reaches into the DP step."""
import tf_keras as keras

from tfdpgen._compat import tf_privacy
from tfdpgen.privacy.dp2 import DP2Optimizer
from tfdpgen.privacy.settings import PrivacySettings

OPTIMIZERS = ("dp-sgd", "dp-adam", "dp2-rmsprop", "dp2-adagrad")
ALIASES = {"sgd": "dp-sgd", "adam": "dp-adam"}
KERAS = {"dp-sgd": keras.optimizers.legacy.SGD, "dp-adam": keras.optimizers.legacy.Adam}
DP_OPTIMIZERS = {"dp-sgd": "VectorizedDPKerasSGDOptimizer", "dp-adam": "VectorizedDPKerasAdamOptimizer"}
ENGINES = ("fast", "vectorized")


def canonical_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")
    return name


def vectorized_optimizers():
    """TF Privacy's vectorized optimizers' module (built on tf.keras, so it needs tf.keras to be tf_keras), or one
    line saying what to do."""
    return tf_privacy("privacy.optimizers.dp_optimizer_keras_vectorized", "engine='vectorized' (--engine vectorized)",
                      needs_legacy_keras=True)


def check_combination(settings: PrivacySettings, optimizer, engine: str):
    """Raise ValueError for an engine, clipping and optimizer that do not go together (before anything is written)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if engine == "vectorized":
        vectorized_optimizers()
    dp2 = isinstance(optimizer, DP2Optimizer) or (isinstance(optimizer, str) and canonical_name(optimizer).startswith("dp2"))
    if engine == "vectorized" and (dp2 or settings.clipping == "adaptive"):
        raise ValueError("adaptive clipping and DP^2 need per-example norms and a clip norm that changes (DP^2 also "
                         "preconditions per-example gradients), which TF Privacy's vectorized optimizer does not "
                         "give: use engine='fast' (--engine fast).")
    if dp2 and settings.clipping == "adaptive":
        raise ValueError("DP^2 clips with two norms (one per phase) and adaptive clipping follows one: use "
                         "clipping='fixed' with a DP^2 optimizer, or adaptive clipping with dp-sgd or dp-adam.")


def make_optimizer(name: str, settings: PrivacySettings, learning_rate: float, engine: str = "fast",
                   dp2_delay: int = 100, dp2_learning_rate: float = None):
    name = canonical_name(name)
    check_combination(settings, name, engine)
    if name.startswith("dp2"):
        return DP2Optimizer(learning_rate, dp2_learning_rate, dp2_delay, variant=name.split("-")[1])
    if engine == "fast":
        return KERAS[name](learning_rate=learning_rate)
    return getattr(vectorized_optimizers(), DP_OPTIMIZERS[name])(
        l2_norm_clip=settings.l2_norm_clip, noise_multiplier=0.0, num_microbatches=None,
        unconnected_gradients_to_zero=True, learning_rate=learning_rate)


def is_dp_optimizer(optimizer) -> bool:
    return isinstance(optimizer, keras.optimizers.legacy.Optimizer) and hasattr(optimizer, "_dp_sum_query")
