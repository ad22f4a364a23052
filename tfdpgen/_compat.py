"""TensorFlow Privacy 0.9.0 where it is installed, and one line that says what to do where it is not or cannot work.

Facts of the checked stack (see DESIGN.md):
1. tfdpgen builds every model on the Keras 2 API through the ``tf_keras`` package itself, never through ``tf.keras``,
   so it works in any process: whether ``tf.keras`` means Keras 3 (TensorFlow >= 2.16 by default) or ``tf_keras``
   (``TF_USE_LEGACY_KERAS=1`` set before it was first touched) is the user's choice, and tfdpgen sets nothing.
2. TF Privacy's vectorized optimizers (the `vectorized` reference engine) are built on ``tf.keras`` when their module
   is imported, so they work only where ``tf.keras`` is ``tf_keras``: that engine, and only it, needs
   ``TF_USE_LEGACY_KERAS=1`` (``legacy_keras_error`` says so in one line).
3. ``import tensorflow_privacy`` imports its estimators, which need ``tensorflow_estimator``, which does not import on
   TF >= 2.16. ``sys.skip_tf_privacy_import = True`` is TF Privacy's own switch to skip that; its submodules still work.
4. TF Privacy 0.9.0 declares Python < 3.12, so on Python >= 3.12 (Colab) pip does not install it with tfdpgen. Only the
   `vectorized` reference engine and TF Privacy's privacy statement (privacy.txt) need it; ``tf_privacy`` imports it
   for them or says in one line how to add it. The fast engine and the accounting (dp_accounting) never need it.
"""
import importlib
import importlib.util
import sys

sys.skip_tf_privacy_import = True

TF_PRIVACY_INSTALL = "pip install --no-deps --ignore-requires-python tensorflow-privacy==0.9.0"


class TFPrivacyMissing(ImportError):
    """TensorFlow Privacy is not installed, or cannot work in this process, and what was asked for needs it."""


def has_tf_privacy() -> bool:
    try:
        return importlib.util.find_spec("tensorflow_privacy") is not None
    except (ImportError, ValueError):  # blocked in sys.modules (None), as the tests do to stand for its absence
        return False


def tf_keras_is_legacy() -> bool:
    """Whether ``tf.keras`` is ``tf_keras`` in this process (resolving it, as anything touching tf.keras does)."""
    import tensorflow as tf
    return tf.keras.__name__.startswith("tf_keras")


def legacy_keras_error(purpose: str) -> TFPrivacyMissing:
    return TFPrivacyMissing(
        f"{purpose} uses TF Privacy's optimizers, which need tf.keras to be Keras 2 (tf_keras), and in this process "
        "it is Keras 3: set TF_USE_LEGACY_KERAS=1 before Python starts (in a notebook, before TensorFlow is imported, "
        "then restart the runtime), or use the fast engine (the default), which works with either.")


def tf_privacy(module: str, purpose: str, needs_legacy_keras: bool = False):
    """TF Privacy's submodule `module` (e.g. "privacy.optimizers.dp_optimizer_keras_vectorized"), or one clear error
    saying that `purpose` needs TF Privacy (or, for modules built on tf.keras, tf.keras as Keras 2) and how to get it."""
    if not has_tf_privacy():
        raise TFPrivacyMissing(
            f"{purpose} needs TensorFlow Privacy, which is not installed (pip installs it with tfdpgen only on Python "
            f"< 3.12). Add it with `{TF_PRIVACY_INSTALL}`; the fast engine (the default) trains without it.")
    if needs_legacy_keras and not tf_keras_is_legacy():
        raise legacy_keras_error(purpose)
    return importlib.import_module(f"tensorflow_privacy.{module}")
