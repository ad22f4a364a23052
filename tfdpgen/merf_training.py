"""One run of DP-MERF (`tfdpgen train --model merf`): one Gaussian release of class-conditional random-feature mean
embeddings, then a generator fitted to it (models.merf).

The only access to the private images is that release; the fit, the export and the samples are post-processing. The
run writes the same files as a DP-SGD run (run.json, split.json, checkpoints/, privacy.json last, privacy.txt,
samples.png, saved_model/1), and privacy.json lists the release.
"""
import math
import os

import numpy as np
import tensorflow as tf

from tfdpgen.data.images import load_images
from tfdpgen.models.merf import DPMERF
from tfdpgen.privacy.releases import gaussian_release
from tfdpgen.privacy.settings import default_delta
from tfdpgen.release_runs import check_flags, checked_budget, begin, fresh_output, release_report, split

EMBEDDINGS = "class-conditional random-feature mean embeddings (sums of unit-norm rows, and class counts)"
# The fit is post-processing, so it takes what it needs. DP-MERF's MNIST setting is about 10,000 features (5,000
# frequencies, a cosine and a sine each); on scikit-learn's public digits 5,000 frequencies beat 2,000 (0.848 against
# 0.830 at epsilon 3), and the larger embedding takes a fit twice as long. Not chosen on the private split.
DEFAULT_FIT_STEPS = 3000
DEFAULT_FREQUENCIES = 5000


def privacy_text(report: dict) -> str:
    if report["epsilon"] is None:
        return "No noise was added (--noise-multiplier 0): no differential privacy statement applies.\n"
    release = report["releases"][0]
    return (f"This run read the {report['dataset_size']} private images once: one Gaussian release of their "
            f"{EMBEDDINGS} (L2 sensitivity {release['sensitivity']:g}, noise standard deviation "
            f"{release['stddev']:.6g}), rho = {report['rho']:.6g} zero-concentrated DP. By dp_accounting's RDP "
            f"accountant the run satisfies ({report['epsilon']:.6g}, {report['delta']:.0e})-differential privacy for "
            f"adding or removing one record (target epsilon {report['target_epsilon']}). The generator was fitted to "
            "the release alone (post-processing). The label set, image shape and the random features (a public seed) "
            "are public and not protected.\n")


def train_merf_run(dataset=None, data_dir=None, epsilon=None, delta=None, noise_multiplier=None, output=None,
                   seed=None, holdout=0.2, holdout_order="random", insecure_noise_seed=None,
                   frequencies=DEFAULT_FREQUENCIES, fit_steps=DEFAULT_FIT_STEPS, verbose=1, **given):
    """Train DP-MERF into `output`; `given` holds the DP-SGD flags, refused if set. Returns `output`."""
    from tfdpgen import training  # the run directory's conventions live there
    check_flags("merf", "it releases mean embeddings once and fits to them", given, noise_multiplier)
    private, epsilon = checked_budget(epsilon, noise_multiplier, delta, training.DEFAULT_EPSILON)
    for name, value in (("--frequencies", frequencies), ("--fit-steps", fit_steps)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
    dataset = dataset or "digits"
    config = {"model": "merf", "dataset": dataset, "data_dir": data_dir, "epsilon": epsilon, "delta": delta,
              "noise_multiplier": noise_multiplier, "seed": seed, "holdout": holdout, "holdout_order": holdout_order,
              "frequencies": frequencies, "fit_steps": fit_steps,
              "insecure_noise_seed_given": insecure_noise_seed is not None}
    output = fresh_output("merf", config, output)
    data = load_images(dataset, data_dir)
    held_out, train, held_out_indices = split(len(data.labels), holdout, holdout_order)
    images, labels = data.images[train], data.labels[train]
    delta = delta or default_delta(len(train))
    tf.keras.utils.set_random_seed(seed if seed is not None else np.random.SeedSequence().entropy % 2**31)
    network = DPMERF(images.shape[1:], int(data.labels.max()) + 1, frequencies=frequencies)

    secrets, ledger, started, rho = begin(output, config, len(data.labels), held_out, holdout_order,
                                          insecure_noise_seed, private, epsilon, delta)
    if verbose:
        print(f"DP-MERF on {dataset} ({len(train)} images, {network.num_classes} classes, "
              f"{'epsilon ' + format(epsilon, 'g') + ', delta ' + format(delta, '.0e') if private else 'no DP'}): "
              f"one release of {2 * frequencies} random features per class, then {fit_steps} fitting steps")
    sums = network.release_statistic(images, labels)
    if private:
        stddev = network.sensitivity / math.sqrt(2 * rho)
        rng = np.random.default_rng([secrets["noise_key"], 17])
        sums = gaussian_release(sums, stddev, network.sensitivity, rng, ledger, EMBEDDINGS)
    counts = network.set_release(sums)
    if verbose:
        print("released class counts: " + ", ".join(f"{count:.0f}" for count in counts))
    network.fit(fit_steps, seed=seed or 0, verbose=verbose)
    tf.train.Checkpoint(model=network).save(os.path.join(output, "checkpoints", "ckpt"))
    report = release_report(ledger, private, epsilon, delta, rho, len(train),
                            "DP-MERF (Harder et al. 2021): one release of random-feature mean embeddings; a "
                            "generator fitted to it", started)
    training.finish_run(output, network, "merf", dataset, report, privacy_text(report), verbose,
                        insecure_noise_seed is not None)
    if verbose and held_out >= 20:
        print(training.synthetic_accuracy_line(network, data.images[held_out_indices], data.labels[held_out_indices],
                                               dataset))
    return output
