"""The privacy budget callback: epsilon in the logs after every epoch, and no step past the target."""
import tf_keras as keras

from tfdpgen.privacy import accounting


class PrivacyBudgetExhausted(RuntimeError):
    """The model has already spent its target epsilon; no further private step is allowed."""


class PrivacyBudget(keras.callbacks.Callback):
    """Logs `epsilon` after every epoch and stops training before a step would take epsilon past the target.

    Reads the model's `privacy` settings and its `dp_steps` counter (a model variable, so checkpoints carry it).
    `target_epsilon` defaults to the settings' target; without one, it only logs.
    """

    def __init__(self, target_epsilon=None):
        super().__init__()
        self.target_epsilon = target_epsilon
        self.max_steps = None

    def _epsilon(self, steps):
        s = self.model.privacy
        return accounting.compute_epsilon(s.noise_multiplier, s.sampling_probability, steps, s.delta, s.accountant,
                                          release=s.release_noise_multiplier)

    def on_train_begin(self, logs=None):
        s = self.model.privacy
        target = self.target_epsilon if self.target_epsilon is not None else s.target_epsilon
        if target is None:
            return
        self.max_steps = accounting.max_steps_within(target, s.noise_multiplier, s.sampling_probability, s.delta,
                                                     s.accountant, release=s.release_noise_multiplier)
        steps = int(self.model.dp_steps.numpy())
        if steps >= self.max_steps:
            raise PrivacyBudgetExhausted(
                f"the privacy budget epsilon={target} is spent: {steps} steps taken, {self.max_steps} allowed with "
                f"noise_multiplier={s.noise_multiplier:.4g}. Sample from this model, or train a new one with a "
                "larger budget.")

    def on_train_batch_end(self, batch, logs=None):
        if self.max_steps is not None and int(self.model.dp_steps.numpy()) >= self.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epsilon"] = self._epsilon(int(self.model.dp_steps.numpy()))
