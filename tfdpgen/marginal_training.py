"""One run of the marginal family (`tfdpgen train --model marginal`): AIM-selected noisy marginals of a table, and a
mixture of products fitted to them (privacy.aim, models.marginal).

What reads the private records: the Gaussian measurements of the chosen marginals and the exponential-mechanism
choices (their scores compare the true marginals with the model's). Everything after them, the fit, the export and the
samples, is post-processing. The run writes the same files as a DP-SGD run (run.json, split.json, checkpoints/,
privacy.json last, privacy.txt, samples.png, saved_model/1) and privacy.json lists every release.
"""
import os

import numpy as np
import tensorflow as tf

from tfdpgen.data.tables import DATAFRAME, TABLES, load_table, table_codes
from tfdpgen.models.marginal import DEFAULT_BINS, DEFAULT_COMPONENTS, DEFAULT_INDEPENDENCE, DPMarginalTable
from tfdpgen.privacy.aim import estimate_total, measure_exactly, run_aim
from tfdpgen.privacy.settings import default_delta
from tfdpgen.release_runs import check_flags, checked_budget, begin, fresh_output, release_report, split

MAX_CELLS = 10_000  # the largest marginal AIM may measure (AIM's own workload cap)
FINAL_FIT_STEPS = 2000  # the last fit, after every release: post-processing, so it can take its time


def privacy_text(report: dict) -> str:
    if report["epsilon"] is None:
        return "No noise was added (--noise-multiplier 0): no differential privacy statement applies.\n"
    counts = report["mechanisms"]
    return (f"This run made {counts.get('gaussian', 0)} Gaussian releases of marginal counts (L2 sensitivity 1 each) "
            f"and {counts.get('exponential', 0)} exponential-mechanism choices of which marginal to measure, from "
            f"{report['dataset_size']} private records, spending rho = {report['rho']:.6g} (zero-concentrated DP) "
            f"in all. Composed by dp_accounting's RDP accountant, the run satisfies ({report['epsilon']:.6g}, "
            f"{report['delta']:.0e})-differential privacy for adding or removing one record (target epsilon "
            f"{report['target_epsilon']}). The schema (columns, categories, numeric bounds and bins) is public and not "
            "protected. privacy.json lists every release.\n")


def train_marginal_run(dataset=None, frame=None, data_dir=None, schema=None, epsilon=None, delta=None,
                       noise_multiplier=None, output=None, seed=None, holdout=0.2, holdout_order="random",
                       insecure_noise_seed=None,
                       components=DEFAULT_COMPONENTS, bins=DEFAULT_BINS, max_cells=MAX_CELLS,
                       independence=DEFAULT_INDEPENDENCE, verbose=1, **given):
    """Train the marginal family into `output`; `given` holds the DP-SGD flags, refused if set; `frame`: a DataFrame
    (`dataset` is then tables.DATAFRAME). Returns `output`."""
    from tfdpgen import training  # the run directory's conventions live there
    check_flags("marginal", "it measures marginals and fits to them", given, noise_multiplier)
    private, epsilon = checked_budget(epsilon, noise_multiplier, delta, training.DEFAULT_EPSILON)
    for name, value, low in (("--components", components, 1), ("--bins", bins, 2), ("max_cells", max_cells, 2)):
        if not (isinstance(value, int) and value >= low):
            raise ValueError(f"{name} must be a whole number of at least {low}, got {value!r}.")
    if not (isinstance(independence, (int, float)) and not isinstance(independence, bool) and independence >= 0):
        raise ValueError(f"--independence must be a number of at least 0 (0 turns the penalty off), "
                         f"got {independence!r}.")
    dataset = dataset or training.DEFAULT_DATASETS["marginal"]
    if schema is None and dataset not in TABLES + (DATAFRAME,):
        raise ValueError(f"the marginal family takes tables: --dataset {' or '.join(TABLES)}, or a CSV with "
                         "--data-dir and --schema.")
    config = {"model": "marginal", "dataset": dataset, "data_dir": data_dir, "schema": schema, "epsilon": epsilon,
              "delta": delta, "noise_multiplier": noise_multiplier, "seed": seed, "holdout": holdout,
              "holdout_order": holdout_order, "components": components, "bins": bins, "max_cells": max_cells,
              "independence": independence,
              "insecure_noise_seed_given": insecure_noise_seed is not None}
    output = fresh_output("marginal", config, output)
    data = load_table(dataset, data_dir, schema, frame)
    total = len(data.labels)
    held_out, train, _ = split(total, holdout, holdout_order)
    codes = table_codes(data, bins)[train]
    delta = delta or default_delta(len(train))
    tf.keras.utils.set_random_seed(seed if seed is not None else np.random.SeedSequence().entropy % 2**31)
    network = DPMarginalTable(data.schema, components=components, bins=bins, seed=seed, independence=independence)

    secrets, ledger, started, rho = begin(output, config, total, held_out, holdout_order, insecure_noise_seed,
                                          private, epsilon, delta)
    names = [column.name for column in data.schema.columns]
    if verbose:
        print(f"DP marginals on {dataset} ({len(train)} records, {len(names)} columns, "
              f"{'epsilon ' + format(epsilon, 'g') + ' = rho ' + format(rho, '.4g') + ' zCDP' if private else 'no DP'}"
              f", delta {delta:.0e}): AIM selection, mixture of {components} products")
    if private:
        measurements = run_aim(codes, network.sizes, network.condition_index, rho, network,
                               np.random.default_rng(secrets["noise_key"]), ledger, names, max_cells,
                               log=print if verbose else (lambda line: None))
    else:
        measurements = measure_exactly(codes, network.sizes, network.condition_index, max_cells)
    network.fit(measurements, estimate_total(measurements), steps=FINAL_FIT_STEPS)
    tf.train.Checkpoint(model=network).save(os.path.join(output, "checkpoints", "ckpt"))
    report = release_report(
        ledger, private, epsilon, delta, rho, len(train),
        "AIM selection (McKenna et al. 2022) of noisy marginals; a mixture of products fitted to them", started,
        measured_marginals=[" x ".join(names[i] for i in m.clique) for m in measurements])
    training.finish_run(output, network, "marginal", dataset, report, privacy_text(report), verbose,
                        insecure_noise_seed is not None)
    return output
