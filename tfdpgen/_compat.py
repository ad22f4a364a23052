"""Make TensorFlow Privacy 0.9.0 importable and working on TensorFlow >= 2.16, and do without it where it is absent.

Two facts of the checked stack (see DESIGN.md):
1. TF Privacy is written for the Keras 2 API, which on TF >= 2.16 is the ``tf_keras`` package. ``tf.keras`` resolves
   to it only if ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first touched, and once a process has resolved
   it to Keras 3 it stays so.
2. ``import tensorflow_privacy`` imports its estimators, which need ``tensorflow_estimator``, which does not import on
   TF >= 2.16. ``sys.skip_tf_privacy_import = True`` is TF Privacy's own switch to skip that; its submodules still work.

3. TF Privacy 0.9.0 declares Python < 3.12, so on Python >= 3.12 (Colab) pip does not install it with tfdpgen. Only the
   `vectorized` reference engine and TF Privacy's privacy statement (privacy.txt) need it; ``tf_privacy`` imports it
   for them or says in one line how to add it. The fast engine and the accounting (dp_accounting) never need it.

This module must be imported before TensorFlow; ``tfdpgen/__init__.py`` does so first.
"""
import importlib
import importlib.util
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.skip_tf_privacy_import = True

import tensorflow as tf  # noqa: E402


class KerasVersionError(ImportError):
    """tf.keras already means Keras 3 in this process, so TF Privacy's optimizers cannot work."""


def check_keras_2() -> None:
    if not tf.keras.__name__.startswith("tf_keras"):
        raise KerasVersionError(
            "tf.keras is Keras 3 in this process, but tfdpgen needs the Keras 2 API (tf_keras) that "
            "TensorFlow Privacy is written for. Import tfdpgen before anything touches tf.keras, or set the "
            "environment variable TF_USE_LEGACY_KERAS=1 before Python starts (in a notebook: "
            "os.environ['TF_USE_LEGACY_KERAS'] = '1' in the first cell, then restart the runtime)."
        )


check_keras_2()

TF_PRIVACY_INSTALL = "pip install --no-deps --ignore-requires-python tensorflow-privacy==0.9.0"


class TFPrivacyMissing(ImportError):
    """TensorFlow Privacy is not installed, and what was asked for needs it."""


def has_tf_privacy() -> bool:
    try:
        return importlib.util.find_spec("tensorflow_privacy") is not None
    except (ImportError, ValueError):  # blocked in sys.modules (None), as the tests do to stand for its absence
        return False


def tf_privacy(module: str, purpose: str):
    """TF Privacy's submodule `module` (e.g. "privacy.optimizers.dp_optimizer_keras_vectorized"), or one clear error
    saying that `purpose` needs TF Privacy and how to add it."""
    if not has_tf_privacy():
        raise TFPrivacyMissing(
            f"{purpose} needs TensorFlow Privacy, which is not installed (pip installs it with tfdpgen only on Python "
            f"< 3.12). Add it with `{TF_PRIVACY_INSTALL}`; the fast engine (the default) trains without it.")
    return importlib.import_module(f"tensorflow_privacy.{module}")

