"""tfdpgen works whatever tf.keras means in the process and in any import order; what needs TF Privacy, or tf.keras as
Keras 2, says so in one line; a command prints its own lines, not TensorFlow's logs."""
import ast
import json
import os
import subprocess
import sys

import tensorflow as tf

from conftest import ROOT
from toys import requires_tf_privacy


def run_python(code, env, *args, timeout=600):
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=env.get("RUN_IN"))


def test_tfdpgen_never_reaches_keras_through_tf_keras():
    """Bug caught: a model built on tf.keras, which is Keras 3 in a process that touched it first."""
    found = []
    for path in (ROOT / "tfdpgen").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "keras" and isinstance(node.value, ast.Name)
                    and node.value.id == "tf"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [place.split(":")[0] for place in found] == ["tfdpgen/_compat.py"], found  # what tf.keras is, for TF Privacy


def test_import_leaves_the_users_keras_as_it_was(subprocess_env):
    code = "import tfdpgen, tfdpgen.runs, tfdpgen.cli; import tensorflow as tf; print(tf.keras.__name__)"
    result = run_python(code, subprocess_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not result.stdout.strip().startswith("tf_keras"), result.stdout  # Keras 3: tfdpgen set no switch


KERAS_3_FIRST = """
import sys
import numpy as np
import tensorflow as tf
users = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])  # the user's own Keras 3 model
assert not tf.keras.__name__.startswith("tf_keras")
from tfdpgen.cli import main
for command in sys.argv[1:]:
    code = main(command.split())
    print("exit", code, flush=True)
    if code:
        sys.exit(code)
print("user's model still works:", users(np.ones((1, 3), np.float32)).shape)
"""


def test_after_keras_3_a_run_trains_exports_samples_and_evaluates(subprocess_env, tmp_path):
    """Bug caught: `import tensorflow` and a touch of tf.keras before tfdpgen stopped it with KerasVersionError."""
    run, base = tmp_path / "run", tmp_path / "serving"
    result = run_python(KERAS_3_FIRST, subprocess_env,
                        f"train --epochs 2 --quiet --checkpoint-every 1000 --output {run}",
                        f"export --run {run} --model-name digits --base-path {base}",
                        f"sample --run {run} -n 4 --out {tmp_path / 'samples.npy'}",
                        f"evaluate --run {run} --n-samples 200")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("exit 0") == 4 and "user's model still works: (1, 2)" in result.stdout
    assert (base / "digits" / "1" / "saved_model.pb").exists() and (tmp_path / "samples.npy").exists()
    assert json.loads((run / "evaluation.json").read_text())["privacy"]["epsilon"] > 0


@requires_tf_privacy
def test_after_keras_3_the_vectorized_engine_says_in_one_line_what_it_needs(subprocess_env, tmp_path):
    """Only TF Privacy's optimizers need tf.keras to be tf_keras; nothing is written before the refusal."""
    result = run_python(KERAS_3_FIRST, subprocess_env,
                        f"train --epochs 1 --quiet --engine vectorized --output {tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("tfdpgen")]
    assert len(lines) == 1 and "TF_USE_LEGACY_KERAS=1" in lines[0] and "fast engine" in lines[0], lines
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@requires_tf_privacy
def test_tf_privacy_submodules_work():
    assert sys.skip_tf_privacy_import is True
    from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras_vectorized
    assert tf.keras.__name__.startswith("tf_keras")  # the tests' TF_USE_LEGACY_KERAS (conftest)
    assert issubclass(dp_optimizer_keras_vectorized.VectorizedDPKerasAdamOptimizer, tf.keras.optimizers.legacy.Adam)


def test_a_command_prints_its_own_lines_not_tensorflows_logs(tmp_path):
    """Bug caught: every command printed TensorFlow's CUDA and CPU start-up lines and "E0000 ... failed call to cuInit"
    (the cause of the run's "NodeDef mentions attribute" line is removed, not hidden: test_evaluation)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")}
    result = run_python("import sys; from tfdpgen.cli import main; sys.exit(main(sys.argv[1:]))", env,
                        "train", "--epochs", "2", "--checkpoint-every", "1000", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    logs = [line for line in lines if line[:5] in ("E0000", "I0000", "W0000") or "absl::InitializeLog" in line
            or line.startswith("WARNING:")]
    assert not logs, logs
    assert any(line.startswith("spent epsilon=") for line in lines) and any("held-out" in line for line in lines)


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
