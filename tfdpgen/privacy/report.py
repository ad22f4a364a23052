"""What a run spent: the fields of privacy.json and a plain-language statement."""
import math

from tfdpgen._compat import TF_PRIVACY_INSTALL, has_tf_privacy, tf_privacy
from tfdpgen.privacy import accounting
from tfdpgen.privacy.ledger import GAUSSIAN, PrivacyLedger
from tfdpgen.privacy.settings import PrivacySettings

ADJACENCY = "add-or-remove-one record (example-level DP)"
NO_DP = "noise_multiplier is 0: this run has no differential privacy guarantee."

SHUFFLE_CAVEAT = (
    "Batches were shuffled fixed-size batches, not Poisson-sampled. `epsilon` is the figure that assumes Poisson "
    "sampling with q = batch_size / dataset_size, as is common practice (TensorFlow Privacy's statement does the "
    "same); it is not a proven guarantee for shuffled batches. `epsilon_without_sampling_amplification` (each record "
    "used once per epoch, no amplification) is. Train with sampling='poisson' for an exact guarantee.")


def ledger_report(ledger: PrivacyLedger, delta: float, private: bool = True) -> dict:
    """privacy.json's account of `ledger` at `delta`, for every family: the epsilon of all its mechanisms composed,
    the accountant asked for and the one that composed them (RDP where an exponential choice has no PLD form), what
    each mechanism did, and every one-shot release (None and a note without noise)."""
    epsilon = ledger.epsilon(delta) if private else math.inf
    report = {"epsilon": None if math.isinf(epsilon) else epsilon, "delta": delta, "accountant": ledger.accountant,
              "composed_by": ledger.composed_by(), "mechanisms": ledger.counts(), "releases": ledger.to_list(),
              "adjacency": ADJACENCY}
    if math.isinf(epsilon):
        report["note"] = NO_DP
    return report


def run_ledger(settings: PrivacySettings, steps: int, releases: PrivacyLedger = None) -> PrivacyLedger:
    """The whole ledger of a DP-SGD run: the one-shot releases in `releases` (the tabular GAN's marginals; by default
    the one `settings.release_noise_multiplier` describes), then `steps` DP steps taken with `settings` (resolved)."""
    if releases is None:
        return accounting.dp_sgd_ledger(settings.noise_multiplier, settings.sampling_probability, steps,
                                        settings.accountant, settings.release_noise_multiplier)
    made = [release.stddev / release.sensitivity for release in releases.releases]
    wanted = [settings.release_noise_multiplier] if settings.release_noise_multiplier else []  # 0: exact, no DP
    if not (len(made) == len(wanted) and all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(made, wanted))
            and all(release.mechanism == GAUSSIAN for release in releases.releases)):
        raise ValueError(f"the releases made (noise multipliers {made}) are not those the settings account for "
                         f"({wanted}).")
    ledger = PrivacyLedger(settings.accountant)
    ledger.releases = list(releases.releases)
    ledger.dp_sgd_steps(settings.noise_multiplier, settings.sampling_probability, steps)
    return ledger


def privacy_report(settings: PrivacySettings, steps: int, releases: PrivacyLedger = None) -> dict:
    """The privacy.json fields for `steps` DP steps taken with `settings` (resolved), after `releases` if any."""
    ledger = run_ledger(settings, steps, releases)
    private = settings.noise_multiplier > 0 and settings.release_noise_multiplier != 0
    report = {
        **ledger_report(ledger, settings.delta, private),
        "noise_multiplier": settings.noise_multiplier,
        "effective_noise_multiplier": settings.effective_noise_multiplier,
        "l2_norm_clip": settings.l2_norm_clip,
        "clipping": settings.clipping,
        "target_quantile": settings.target_quantile if settings.clipping == "adaptive" else None,
        "steps": int(steps),
        "sampling": settings.sampling,
        "sampling_probability": settings.sampling_probability,
        "dataset_size": settings.dataset_size,
        "batch_size": settings.batch_size,
        "epochs": steps / settings.steps_per_epoch,
        "target_epsilon": settings.target_epsilon,
    }
    if settings.release_noise_multiplier is not None:
        report["release_noise_multiplier"] = settings.release_noise_multiplier
    if settings.clipping == "adaptive":
        report["clipped_count_stddev"] = settings.count_stddev
        report["adaptive_clipping"] = (
            "l2_norm_clip is the initial clip norm. Each step releases the clipped sum with noise "
            "effective_noise_multiplier * clip and the count of unclipped examples (sensitivity 1/2) with noise "
            "clipped_count_stddev; together they are one Gaussian release at noise_multiplier, the figure the "
            "accountant uses.")
    if settings.sampling == "shuffle":
        report["caveat"] = SHUFFLE_CAVEAT
        report["epsilon_without_sampling_amplification"] = accounting.compute_epsilon(
            settings.noise_multiplier, 1.0, math.ceil(steps / settings.steps_per_epoch), settings.delta,
            settings.accountant, settings.release_noise_multiplier)
    return report


def epochs_for_steps(steps: int, sampling_probability: float) -> float:
    """The epoch count that TF Privacy turns back into exactly `steps` steps (it takes ceil(epochs / q))."""
    epochs = steps * sampling_probability
    while math.ceil(epochs / sampling_probability) > steps:
        epochs = math.nextafter(epochs, 0.0)
    return epochs


def privacy_statement(settings: PrivacySettings, steps: int) -> str:
    """TensorFlow Privacy's statement for these settings (one example per microbatch), or, where TF Privacy is not
    installed, a line saying so and how to add it (privacy.json has the epsilon either way)."""
    if settings.noise_multiplier <= 0 or steps <= 0:
        return "No private step was taken with noise: no differential privacy statement applies.\n"
    if not has_tf_privacy():
        return ("TensorFlow Privacy is not installed, so its privacy statement was not written; privacy.json has the "
                f"epsilon from dp_accounting. To add it: {TF_PRIVACY_INSTALL}\n")
    compute_dp_sgd_privacy_lib = tf_privacy("privacy.analysis.compute_dp_sgd_privacy_lib", "the privacy statement")
    accountant = compute_dp_sgd_privacy_lib.AccountantType[settings.accountant.upper()]
    preface = ""
    if settings.release_noise_multiplier is not None:
        preface = (f"Before its steps this run made one Gaussian release (noise multiplier "
                   f"{settings.release_noise_multiplier:.4g}; see `releases` in privacy.json). The epsilon in "
                   "privacy.json composes it with the steps; the statement below covers the steps alone.\n\n")
    return preface + compute_dp_sgd_privacy_lib.compute_dp_sgd_privacy_statement(
        number_of_examples=settings.dataset_size, batch_size=settings.batch_size,
        num_epochs=epochs_for_steps(steps, settings.sampling_probability), noise_multiplier=settings.noise_multiplier,
        delta=settings.delta, used_microbatching=False, accountant_type=accountant)
