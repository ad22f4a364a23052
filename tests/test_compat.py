"""tfdpgen sets up the Keras 2 API that TF Privacy needs, or says clearly why it cannot."""
import json
import subprocess
import sys

import tensorflow as tf

from toys import requires_tf_privacy


def test_import_sets_keras_2():
    assert tf.keras.__name__.startswith("tf_keras")


@requires_tf_privacy
def test_tf_privacy_submodules_work():
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


def test_import_leaves_the_users_plotting_backend_as_it_was(subprocess_env):
    """Bug caught: matplotlib.use("Agg") on import turned a notebook's inline backend off (plt.show() drew nothing)."""
    code = ("import matplotlib; matplotlib.use('svg'); import tfdpgen, tfdpgen.cli, tfdpgen.evaluation.plots; "
            "print(matplotlib.get_backend())")
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "svg"


def test_without_tf_privacy_the_fast_engine_trains_and_vectorized_says_how_to_add_it(subprocess_env, tmp_path):
    """Python >= 3.12 (Colab) has no TF Privacy unless added by hand: tfdpgen must import and train without it."""
    block = ("import sys; sys.modules['tensorflow_privacy'] = None; from tfdpgen.cli import main; "
             "sys.exit(main(sys.argv[1:]))")
    common = ["train", "--epochs", "1", "--quiet", "--checkpoint-every", "1000"]
    vectorized = subprocess.run([sys.executable, "-c", block, *common, "--engine", "vectorized", "--output",
                                 str(tmp_path / "vectorized")], env=subprocess_env, capture_output=True, text=True,
                                timeout=300)
    assert vectorized.returncode == 2, vectorized.stderr[-2000:]
    lines = [line for line in vectorized.stderr.splitlines() if line.startswith("tfdpgen")]
    assert lines == [lines[0]] and "pip install --no-deps --ignore-requires-python tensorflow-privacy" in lines[0]
    assert not (tmp_path / "vectorized").exists()
    fast = subprocess.run([sys.executable, "-c", block, *common, "--output", str(tmp_path / "fast")],
                          env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert fast.returncode == 0, fast.stderr[-2000:]
    assert "tensorflow-privacy==0.9.0" in (tmp_path / "fast" / "privacy.txt").read_text()
    assert json.loads((tmp_path / "fast" / "privacy.json").read_text())["epsilon"] > 0
