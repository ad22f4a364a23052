"""Checkpoints of a training run, and resuming one without ever resetting the privacy count.

A checkpoint holds the model's variables (weights, `dp_steps`, the model's random key) and the optimizer's (slots,
iterations). It holds no secret: the noise key and the sampling seed live in the run's `.secrets.json` (mode 0600,
deleted when the run finishes), so checkpoints stay as releasable as the DP guarantee says. Because batches and noise
are stateless functions of (secret, step), a resumed run replays steps lost since the last checkpoint exactly: the
replay is the same release as the lost step, so `steps` and `epsilon` end as in an uninterrupted run and nothing is
under-counted.

The secrets (runs.directory.RunDirectory.secrets) come from the operating system's entropy. Only `insecure_noise_seed`
(for tests and debugging) derives them from a number, and then whoever knows that number can regenerate the noise: the
run says so in privacy.json. `--seed` never reaches them.
"""
import os

import tensorflow as tf
import tf_keras as keras


class CheckpointError(RuntimeError):
    """No checkpoint of the run can be read; resuming would restart the privacy count, so it is refused."""


INSECURE_NOISE_WARNING = (
    "This run's DP noise and batch sampling were derived from --insecure-noise-seed: the (epsilon, delta) guarantee "
    "holds only while that seed stays secret. Anyone who knows it can regenerate the noise and undo it.")


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the model and optimizer every `every_steps` DP steps and at every epoch end, keeping the last three."""

    def __init__(self, directory: str, model, every_steps: int = 100):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"checkpoint interval must be at least 1 step, got {every_steps}.")
        self.directory = directory
        self.every_steps = every_steps
        self.dp_model = model
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=3)
        self.saved_step = None

    def save(self) -> None:
        step = int(self.dp_model.dp_steps.numpy())
        if step != self.saved_step:
            self.manager.save(checkpoint_number=step)
            self.saved_step = step

    def restore_latest(self) -> int:
        """Restore the newest readable checkpoint, falling back to older ones; return its step count."""
        candidates = list(reversed(self.manager.checkpoints))
        if not candidates:
            raise CheckpointError(f"{self.directory} holds no checkpoint of this unfinished run, so its privacy count "
                                  "cannot be recovered. Start a new run in a new --output directory.")
        errors = []
        for path in candidates:
            try:
                self.checkpoint.read(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError) as error:
                errors.append(f"{os.path.basename(path)}: {type(error).__name__}")
                continue
            step = int(self.dp_model.dp_steps.numpy())
            if path.endswith(f"-{step}"):
                self.saved_step = step
                if errors:
                    print(f"tfdpgen: skipped unreadable checkpoints ({'; '.join(errors)}); resumed from step {step}")
                return step
            errors.append(f"{os.path.basename(path)}: holds step {step}")
        raise CheckpointError(f"no checkpoint in {self.directory} can be read ({'; '.join(errors)}); resuming would "
                              "restart the privacy count. Start a new run in a new --output directory.")

    def on_train_batch_end(self, batch, logs=None):
        if int(self.dp_model.dp_steps.numpy()) % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()
