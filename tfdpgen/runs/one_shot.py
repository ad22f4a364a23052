"""The one-shot trainer: a family that reads its private records only through releases (noisy marginals, noisy mean
embeddings) made by its `release_and_fit`, and is fitted to them (post-processing). Its budget is an epsilon spent as
zCDP (AIM) or, for a single Gaussian release, calibrated exactly by the accountant (privacy.accounting.ReleaseBudget);
its privacy.json lists every release from the run's ledger. Such a run takes no DP-SGD step and cannot resume.
"""
import sys

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfdpgen.models.registry import TABLE
from tfdpgen.privacy.accounting import ReleaseBudget
from tfdpgen.privacy.ledger import PrivacyLedger
from tfdpgen.privacy.report import ledger_report
from tfdpgen.privacy.settings import default_delta
from tfdpgen.runs.checkpoints import INSECURE_NOISE_WARNING
from tfdpgen.runs.finish import closing_accuracy_line, finish_run
from tfdpgen.runs.split import load_data, split

COMPOSITION = {
    "rdp": "each release enters by its zCDP bound (Gaussian: sensitivity^2/(2 sigma^2); exponential mechanism: "
           "epsilon^2/8), composed by dp_accounting's RdpAccountant as Gaussian events of equal Renyi curves",
    "pld": "each Gaussian release enters by its exact privacy loss distribution (dp_accounting's PLDAccountant)"}


def release_report(ledger: PrivacyLedger, budget, delta, dataset_size, method, **extra) -> dict:
    """privacy.json's fields for a run whose only access to the records is `ledger`'s releases, made within `budget`
    (a ReleaseBudget; None: a run without DP)."""
    private = budget is not None
    report = ledger_report(ledger, delta, private)
    return {**report, "target_epsilon": budget.epsilon if private else None, "method": method,
            "rho": ledger.rho if private else None, "rho_budget": budget.rho if private else None,
            "dataset_size": dataset_size, **extra, "composition": COMPOSITION[ledger.composed_by()]}


def train_one_shot(config, run) -> str:
    """Train the one-shot run `config` (runs.config.RunConfig) into `run` (a new RunDirectory)."""
    family, verbose, private = config.family, config.verbose, config.private
    run.refuse_unfinished(family.name)
    # The data only: a table stays in its compact codes (the networks' one-hot rows of ten million records would not fit)
    data = load_data(family, config.dataset, config.data_dir, config.schema, config.frame, config.num_classes)
    train, held_out, split_record = split(len(data.labels), config.holdout, config.holdout_order)
    delta = config.delta or default_delta(len(train))
    keras.utils.set_random_seed(config.seed if config.seed is not None else np.random.SeedSequence().entropy % 2**31)
    options = config.resolved_options()
    built = {option.name: options[option.name] for option in family.options if not option.release}
    network = family.build(data, config.seed if family.data == TABLE else None, **built)
    release_options = {option.name: options[option.name] for option in family.options if option.release}
    network.check_release(**release_options)

    run.create(config.to_json(), split_record)
    secrets = run.secrets(config.insecure_noise_seed)
    if config.insecure_noise_seed is not None:
        print(f"tfdpgen: warning: {INSECURE_NOISE_WARNING}", file=sys.stderr)
    budget = ReleaseBudget(config.epsilon, delta, config.accountant) if private else None
    if verbose:
        spend = (f"epsilon {config.epsilon:g} = rho {budget.rho:.4g} zCDP, delta {delta:.0e}, {config.accountant}"
                 if private else "no DP")
        print(f"{family.name} on {config.dataset} ({len(train)} records, {spend}): "
              f"{network.describe_release(options)}")
    ledger = PrivacyLedger(config.accountant)
    rng = np.random.default_rng([secrets["noise_key"], *network.release_stream])
    extra = network.release_and_fit(data, train, budget, rng, ledger, seed=config.seed or 0, verbose=verbose,
                                    **release_options)
    tf.train.Checkpoint(model=network).save(run.file("checkpoints", "ckpt"))
    report = release_report(ledger, budget, delta, len(train), network.method, **extra)
    finish_run(run, network, family, config.dataset, report, network.privacy_text(report), verbose,
               config.insecure_noise_seed is not None)
    closing = None if family.data == TABLE else closing_accuracy_line(network, family, data.images[held_out],
                                                                      data.labels[held_out], config.dataset)
    if verbose and closing:
        print(closing)
    return run.path
