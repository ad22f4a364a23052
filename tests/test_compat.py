"""tfdpgen sets up the Keras 2 API that TF Privacy needs, or says clearly why it cannot."""
import subprocess
import sys

import tensorflow as tf


def test_import_sets_keras_2_and_tf_privacy_submodules_work():
    assert tf.keras.__name__.startswith("tf_keras")
    assert sys.skip_tf_privacy_import is True
    from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras_vectorized
    assert issubclass(dp_optimizer_keras_vectorized.VectorizedDPKerasAdamOptimizer, tf.keras.optimizers.legacy.Adam)


def test_keras_3_already_loaded_gives_one_clear_error(subprocess_env):
    code = "import tensorflow as tf; tf.keras.Model; import tfdpgen"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "KerasVersionError" in result.stderr and "Import tfdpgen before anything touches tf.keras" in result.stderr


def test_import_first_works_without_the_variable(subprocess_env):
    code = "import tfdpgen, tensorflow as tf; print(tf.keras.__name__)"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("tf_keras")
