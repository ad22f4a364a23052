import os
import pathlib

import pytest

# Memory tests read TensorFlow's allocator statistics, which the CPU allocator keeps only as the BFC allocator; TensorFlow
# picks it by itself only where oneDNN is on (some CPUs, not these AMD ones), so it is switched on for every CPU here,
# before TensorFlow starts.
os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"

# The reference engine's tests need TF Privacy's optimizers, which are built on tf.keras and so need it to be tf_keras.
# tfdpgen itself never touches tf.keras: test_compat and test_notebooks run it where tf.keras is Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

# A DP-SGD run turns deterministic kernels on for its whole process (runs/dp_sgd.py), and they need a global seed. Both
# are set before every test, so that each sees the same state whichever tests ran before it in its process
# (pytest-xdist gives each process its own share of the files).
tf.config.experimental.enable_op_determinism()


@pytest.fixture(autouse=True)
def same_global_seed():
    keras.utils.set_random_seed(0)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """../shared/data (real MNIST and Adult) beside the repository; tests that need it skip in a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (it sits beside the repository on CI and dev machines)")
    return SHARED_DATA


@pytest.fixture
def subprocess_env():
    """The environment for a child process as a user has it: without the tests' TF_USE_LEGACY_KERAS."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env
