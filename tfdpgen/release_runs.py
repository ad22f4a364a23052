"""What the runs of families that read private records only through one-shot releases share (the marginal family,
DP-MERF): they take no DP-SGD step, so DP-SGD flags are refused; their budget is an epsilon spent as zCDP; their
privacy.json lists every release from the run's PrivacyLedger.
"""
import inspect
import math
import os
import sys
import time

from tfdpgen.checkpoints import INSECURE_NOISE_WARNING, load_or_create_secrets
from tfdpgen.privacy.ledger import PrivacyLedger, rho_for_epsilon

# Flags of DP-SGD that mean nothing here: given, they are refused rather than ignored.
DP_SGD_ONLY = ("epochs", "batch_size", "l2_norm_clip", "learning_rate", "latent_dim", "dp2_learning_rate",
               "discriminator_steps")
COMPOSITION = ("each release enters by its zCDP bound (Gaussian: sensitivity^2/(2 sigma^2); exponential mechanism: "
               "epsilon^2/8), composed by dp_accounting's RdpAccountant as Gaussian events of equal Renyi curves")


def check_flags(family: str, what_it_does: str, given: dict, noise_multiplier) -> None:
    """One error for any DP-SGD setting given to a family that takes no DP-SGD step."""
    for name, value in given.items():
        if name in DP_SGD_ONLY and value is not None:
            raise ValueError(f"--{name.replace('_', '-')} is a DP-SGD setting; the {family} family has no training "
                             f"steps ({what_it_does}): leave it out.")
    if noise_multiplier not in (None, 0):
        raise ValueError(f"the {family} family calibrates its noise from --epsilon; --noise-multiplier takes only 0 "
                         "there (a non-private run, for sanity checks).")
    from tfdpgen.training import train_run
    defaults = inspect.signature(train_run).parameters  # DP-SGD choices left at train_run's defaults
    for name in ("sampling", "accountant", "optimizer", "clipping", "engine", "strategy"):
        if given.get(name, defaults[name].default) != defaults[name].default:
            raise ValueError(f"--{name} is a DP-SGD setting; the {family} family does not use it: leave it out.")


def checked_budget(epsilon, noise_multiplier, delta, default_epsilon):
    """(private, epsilon): a run is private unless --noise-multiplier 0; its epsilon defaults to `default_epsilon`."""
    private = noise_multiplier != 0
    if private:
        epsilon = default_epsilon if epsilon is None else epsilon
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"--epsilon must be a positive number, got {epsilon!r}.")
    elif epsilon is not None:
        raise ValueError("--noise-multiplier 0 is a non-private run: leave --epsilon out.")
    if delta is not None and not 0 < delta < 1:
        raise ValueError(f"--delta must be in (0, 1), got {delta!r}.")
    return private, epsilon


def fresh_output(family: str, config: dict, output) -> str:
    """The run directory for a new run of `family`: one that holds an unfinished run is refused, not resumed."""
    from tfdpgen import training
    output = output or training.default_output(family, config["dataset"])
    if training.check_output_dir(output, config):
        raise training.RunDirectoryError(
            f"--output {output} holds an unfinished {family} run. It cannot be resumed (its noisy releases were not "
            "kept), and what it released before it stopped counts against your data's budget too. Give a new "
            "directory. Nothing was overwritten.")
    return output


def split(total: int, holdout, holdout_order: str):
    """(held-out count, training indices, held-out indices), as DP-SGD runs split (training.split_indices)."""
    from tfdpgen import training
    held_out = training.held_out_count(total, holdout)
    return (held_out, *training.split_indices(total, held_out, holdout_order))


def begin(output, config, records, held_out, holdout_order, insecure_noise_seed, private, epsilon, delta):
    """Create the run directory and write the new run's files and secrets; returns (secrets, an empty ledger, the start
    time, the zCDP budget rho of the target epsilon, a hair under it so that rounding never lands above the target)."""
    from tfdpgen import training
    os.makedirs(output, exist_ok=True)
    training.write_run_files(output, config, records, held_out, holdout_order)
    secrets = load_or_create_secrets(output, insecure_noise_seed)
    if insecure_noise_seed is not None:
        print(f"tfdpgen: warning: {INSECURE_NOISE_WARNING}", file=sys.stderr)
    rho = rho_for_epsilon(epsilon, delta) * (1 - 1e-9) if private else math.inf
    return secrets, PrivacyLedger(), time.time(), rho


def release_report(ledger: PrivacyLedger, private: bool, target_epsilon, delta, rho_budget, dataset_size, method,
                   started: float, **extra) -> dict:
    """privacy.json's fields for a run whose only access to the records is `ledger`'s releases."""
    report = {"epsilon": ledger.epsilon(delta) if private else None, "delta": delta, "target_epsilon": target_epsilon,
              "accountant": "rdp", "method": method, "rho": ledger.rho if private else None,
              "rho_budget": rho_budget if private else None, "mechanisms": ledger.counts(),
              "releases": ledger.to_list(), "dataset_size": dataset_size, **extra, "composition": COMPOSITION,
              "adjacency": "add-or-remove-one record (example-level DP)", "training_seconds": time.time() - started}
    if not private:
        report["note"] = "noise_multiplier is 0: this run has no differential privacy guarantee."
    return report
