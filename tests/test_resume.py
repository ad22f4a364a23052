"""A run killed with SIGKILL resumes from its last checkpoint and ends as an uninterrupted run would."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tf_keras as keras

import tfdpgen
from tfdpgen import cli
from tfdpgen.data.sampling import private_batches

TRAIN = ["--epochs", "6", "--batch-size", "64", "--seed", "5", "--insecure-noise-seed", "5", "--checkpoint-every", "20",
         "--quiet"]
SAMPLE = """
import sys, json, tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
print(json.dumps(fn(num_samples=tf.constant(8), seed=tf.constant(3, tf.int64))["samples"].numpy().ravel().tolist()))
"""


def train_command(output):
    return [sys.executable, "-m", "tfdpgen.cli", "train", "--output", str(output)] + TRAIN


def samples(run_dir, env):
    out = subprocess.run([sys.executable, "-c", SAMPLE, str(run_dir / "saved_model" / "1")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return np.array(json.loads(out.stdout.strip().splitlines()[-1]))


def kill_after_checkpoint(output, step, command=None):
    process = subprocess.Popen(command or train_command(output), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (output / "checkpoints" / f"ckpt-{step}.index").exists():
        assert process.poll() is None and time.time() < deadline, "training ended before the kill"
        time.sleep(0.02)
    time.sleep(0.3)  # a few more steps, lost with the process
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "privacy.json").exists()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "whole"
    assert subprocess.run(train_command(output), capture_output=True, timeout=600).returncode == 0
    return output


def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path, uninterrupted, subprocess_env):
    output = tmp_path / "killed"
    kill_after_checkpoint(output, 60)
    assert (output / ".secrets.json").exists() and oct((output / ".secrets.json").stat().st_mode)[-3:] == "600"
    result = subprocess.run(train_command(output), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, whole = (json.loads((d / "privacy.json").read_text()) for d in (output, uninterrupted))
    assert resumed["steps"] == whole["steps"] == 6 * round(1438 / 64)  # 1,438 digits trained on, 359 held out
    assert resumed["epsilon"] == whole["epsilon"]
    assert not (output / ".secrets.json").exists()
    np.testing.assert_allclose(samples(output, subprocess_env), samples(uninterrupted, subprocess_env), atol=1e-4)


def test_resume_reads_its_checkpoint_and_secrets_rather_than_restarting(tmp_path, subprocess_env):
    """A run with no --seed and no --insecure-noise-seed (weights, noise and batches all from OS entropy) is killed;
    two copies of its directory, resumed apart, end identical. Catches: a resume that ignores its checkpoint (each copy
    would start from fresh random weights) or that draws new secrets instead of reading .secrets.json (each copy would
    draw other noise and batches); the seeded tests above cannot tell either from resuming."""
    entropy_only = [flag for flag in TRAIN if flag not in ("--seed", "5", "--insecure-noise-seed")]
    assert entropy_only == ["--epochs", "6", "--batch-size", "64", "--checkpoint-every", "20", "--quiet"]
    first = tmp_path / "first"
    kill_after_checkpoint(first, 40, [sys.executable, "-m", "tfdpgen.cli", "train", "--output", str(first)]
                          + entropy_only)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    for output in (first, second):
        assert cli.main(["train", "--output", str(output)] + entropy_only) == 0
    reports = [json.loads((output / "privacy.json").read_text()) for output in (first, second)]
    assert reports[0]["steps"] == reports[1]["steps"] == 6 * round(1438 / 64)
    assert reports[0]["reproducible_noise"] is False
    np.testing.assert_array_equal(samples(first, subprocess_env), samples(second, subprocess_env))


def test_corrupted_newest_checkpoint_falls_back_and_all_corrupted_refuses(tmp_path, uninterrupted, capsys):
    output = tmp_path / "corrupt"
    kill_after_checkpoint(output, 40)
    checkpoints = sorted((output / "checkpoints").glob("ckpt-*.index"), key=lambda p: int(p.stem.split("-")[1]))
    newest = checkpoints[-1].with_suffix(".data-00000-of-00001")
    newest.write_bytes(newest.read_bytes()[:100])
    assert cli.main(["train", "--output", str(output)] + TRAIN) == 0
    assert "skipped unreadable checkpoints" in capsys.readouterr().out
    assert json.loads((output / "privacy.json").read_text())["epsilon"] == json.loads(
        (uninterrupted / "privacy.json").read_text())["epsilon"]

    broken = tmp_path / "broken"
    kill_after_checkpoint(broken, 20)
    for data in (broken / "checkpoints").glob("ckpt-*.data-*"):
        data.write_bytes(b"")
    assert cli.main(["train", "--output", str(broken)] + TRAIN) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "would restart the privacy count" in err
    assert not (broken / "privacy.json").exists()


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    output = tmp_path / "other"
    kill_after_checkpoint(output, 20)
    before = sorted(os.listdir(output / "checkpoints"))
    assert cli.main(["train", "--output", str(output), "--epsilon", "8"] + TRAIN) == 2
    assert "holds an unfinished run with other settings (epsilon: 3.0 -> 8.0)" in capsys.readouterr().err
    assert sorted(os.listdir(output / "checkpoints")) == before


def test_keras_backup_and_restore_keeps_the_privacy_count_and_data_position(tmp_path):
    images = np.random.default_rng(0).uniform(size=(200, 8, 8, 1)).astype("float32")
    settings = tfdpgen.PrivacySettings(dataset_size=200, batch_size=20, epochs=4, noise_multiplier=1.0)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated crash")

    def run(callbacks, backup="backup"):
        keras.utils.set_random_seed(0)
        model = tfdpgen.DPVAE(image_shape=(8, 8, 1), latent_dim=2, seed=1)
        model.compile(privacy=settings, optimizer="sgd", learning_rate=0.01, noise_key=7)
        model.fit(private_batches(images, np.zeros(200, "int32"), model.privacy, seed=3, start_step=model.dp_steps),
                  epochs=4, steps_per_epoch=10, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / backup))] + callbacks)
        return model

    with pytest.raises(RuntimeError, match="simulated crash"):
        run([Crash()])
    resumed = run([])
    whole = run([], backup="other")
    assert int(resumed.dp_steps.numpy()) == int(whole.dp_steps.numpy()) == 40
    assert resumed.privacy_report() == whole.privacy_report()
    for a, b in zip(resumed.get_weights(), whole.get_weights()):  # same batches and noise from step 20 on
        np.testing.assert_allclose(a, b, atol=1e-5)
