"""Make TensorFlow Privacy 0.9.0 importable and working on TensorFlow >= 2.16.

Two facts of the checked stack (see DESIGN.md):
1. TF Privacy is written for the Keras 2 API, which on TF >= 2.16 is the ``tf_keras`` package. ``tf.keras`` resolves
   to it only if ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first touched, and once a process has resolved
   it to Keras 3 it stays so.
2. ``import tensorflow_privacy`` imports its estimators, which need ``tensorflow_estimator``, which does not import on
   TF >= 2.16. ``sys.skip_tf_privacy_import = True`` is TF Privacy's own switch to skip that; its submodules still work.

This module must be imported before TensorFlow; ``tfdpgen/__init__.py`` does so first.
"""
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
