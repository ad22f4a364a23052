"""The one-shot trainer: a family that reads its private records only through releases (noisy marginals, noisy mean
embeddings) made by its `release_and_fit`, and is fitted to them (post-processing). Its budget is an epsilon spent as
zCDP; its privacy.json lists every release from the run's ledger. Such a run takes no DP-SGD step and cannot resume.
"""
import math
import sys

import numpy as np
import tensorflow as tf

from tfdpgen.models.registry import TABLE
from tfdpgen.privacy.ledger import PrivacyLedger, rho_for_epsilon
from tfdpgen.privacy.settings import default_delta
from tfdpgen.runs.checkpoints import INSECURE_NOISE_WARNING
from tfdpgen.runs.finish import closing_accuracy_line, finish_run
from tfdpgen.runs.split import load_records, split

COMPOSITION = ("each release enters by its zCDP bound (Gaussian: sensitivity^2/(2 sigma^2); exponential mechanism: "
               "epsilon^2/8), composed by dp_accounting's RdpAccountant as Gaussian events of equal Renyi curves")


def release_report(ledger: PrivacyLedger, private: bool, target_epsilon, delta, rho_budget, dataset_size, method,
                   **extra) -> dict:
    """privacy.json's fields for a run whose only access to the records is `ledger`'s releases."""
    report = {"epsilon": ledger.epsilon(delta) if private else None, "delta": delta, "target_epsilon": target_epsilon,
              "accountant": "rdp", "method": method, "rho": ledger.rho if private else None,
              "rho_budget": rho_budget if private else None, "mechanisms": ledger.counts(),
              "releases": ledger.to_list(), "dataset_size": dataset_size, **extra, "composition": COMPOSITION,
              "adjacency": "add-or-remove-one record (example-level DP)"}
    if not private:
        report["note"] = "noise_multiplier is 0: this run has no differential privacy guarantee."
    return report


def train_one_shot(config, run) -> str:
    """Train the one-shot run `config` (runs.config.RunConfig) into `run` (a new RunDirectory)."""
    family, verbose, private = config.family, config.verbose, config.private
    run.refuse_unfinished(config.to_json(), family.name)
    records, labels, data = load_records(family, config.dataset, config.data_dir, config.schema, config.frame)
    train, held_out, split_record = split(len(labels), config.holdout, config.holdout_order)
    delta = config.delta or default_delta(len(train))
    tf.keras.utils.set_random_seed(config.seed if config.seed is not None else np.random.SeedSequence().entropy % 2**31)
    options = config.resolved_options()
    built = {option.name: options[option.name] for option in family.options if not option.release}
    network = family.build(data, config.seed if family.data == TABLE else None, **built)

    run.create(config.to_json(), split_record)
    secrets = run.secrets(config.insecure_noise_seed)
    if config.insecure_noise_seed is not None:
        print(f"tfdpgen: warning: {INSECURE_NOISE_WARNING}", file=sys.stderr)
    # a hair under the target's zCDP budget, so that rounding never lands above the target
    rho = rho_for_epsilon(config.epsilon, delta) * (1 - 1e-9) if private else math.inf
    if verbose:
        budget = f"epsilon {config.epsilon:g} = rho {rho:.4g} zCDP, delta {delta:.0e}" if private else "no DP"
        print(f"{family.name} on {config.dataset} ({len(train)} records, {budget}): "
              f"{network.describe_release(options)}")
    ledger = PrivacyLedger()
    rng = np.random.default_rng([secrets["noise_key"], *network.release_stream])
    extra = network.release_and_fit(data, train, rho if private else None, rng, ledger, seed=config.seed or 0,
                                    verbose=verbose, **{option.name: options[option.name]
                                                        for option in family.options if option.release})
    tf.train.Checkpoint(model=network).save(run.file("checkpoints", "ckpt"))
    report = release_report(ledger, private, config.epsilon, delta, rho, len(train), network.method, **extra)
    finish_run(run, network, family, config.dataset, report, network.privacy_text(report), verbose,
               config.insecure_noise_seed is not None)
    closing = closing_accuracy_line(network, family, records[held_out], labels[held_out], config.dataset)
    if verbose and closing:
        print(closing)
    return run.path
