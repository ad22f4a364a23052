"""The one finisher every run ends with: the export, the picture and the privacy statement, then privacy.json last;
and the closing line that says what the synthetic data is worth."""
import os

import numpy as np
import tensorflow as tf

from tfdpgen import __version__
from tfdpgen.evaluation.images import tstr_accuracy
from tfdpgen.evaluation.plots import save_column_histograms, save_image_grid
from tfdpgen.export.saved_model import export_sampler
from tfdpgen.models.registry import TABLE
from tfdpgen.runs.checkpoints import INSECURE_NOISE_WARNING

EXPORT_FORMAT = 2  # 2: the network's get_config() under "config" (1: family-specific keys, read by runs.trained)


def export_metadata(network, family, dataset, report) -> dict:
    """What the export carries besides the network: enough to rebuild it (`config`) and the privacy it was made with."""
    metadata = {"family": family.name, "dataset": dataset, "format": EXPORT_FORMAT, "config": network.get_config(),
                "latent_dim": network.latent_dim, "num_classes": network.num_classes, "privacy": report,
                "tfdpgen_version": __version__, "tensorflow_version": tf.__version__}
    if family.data == TABLE:
        metadata["schema"] = network.schema.to_dict()
    else:
        metadata["image_shape"] = list(network.image_shape)
    return metadata


def save_samples_picture(network, family, path, title) -> None:
    """The run's picture, by its data kind: column histograms of a table, or an image grid (one class per column)."""
    if family.data == TABLE:
        save_column_histograms(network.sample(1000, seed=0), path, title=title)
    elif network.num_classes:
        labels = np.tile(np.arange(network.num_classes), 8)
        save_image_grid(network.sample(len(labels), seed=0, labels=labels), path, columns=network.num_classes,
                        title=title)
    else:
        save_image_grid(network.sample(64, seed=0), path, title=title)


def finish_run(run, network, family, dataset, report, statement, verbose=1, insecure_noise=False):
    """Write the export, the picture and `statement` (privacy.txt), then `report` as privacy.json last; drop the
    secrets."""
    report["reproducible_noise"] = insecure_noise
    if insecure_noise:
        report["warning"] = INSECURE_NOISE_WARNING
    partial = run.partial_export_dir()
    export_sampler(network, partial, metadata=export_metadata(network, family, dataset, report))
    os.replace(partial, run.export_dir)
    title = (f"DP-{family.name.upper()} on {dataset}, epsilon={report['epsilon']:.3g}, delta={report['delta']:.0e}"
             if report["epsilon"] is not None else f"{family.name} on {dataset}, no DP")
    save_samples_picture(network, family, run.samples_picture, title)
    run.write_statement(statement)
    run.write_report(report)
    run.delete_secrets()
    if verbose:
        count, unit = (report["steps"], "step") if "steps" in report else (len(report["releases"]), "release")
        spent = f"in {count} {unit}" + ("" if count == 1 else "s")
        print(f"spent epsilon={report['epsilon']:.3g} at delta={report['delta']:.0e} {spent}; wrote {run.path}/ "
              "(privacy.json, samples.png, saved_model/1)")


def closing_accuracy_line(network, family, held_out, held_out_labels, dataset, count=2000):
    """What a conditional image family's synthetic data is worth, in one line: the evaluation's small CNN trained on
    `count` class-balanced samples, scored on the held-out records (train on synthetic, test on real); None for other
    families or fewer than 20 held-out records."""
    if family.data == TABLE or not family.conditional or len(held_out) < 20:
        return None
    labels = np.arange(count) % network.num_classes
    accuracy = tstr_accuracy(network.sample(count, seed=1, labels=labels), labels, held_out, held_out_labels,
                             network.num_classes)
    return (f"train on {count} synthetic, test on the {len(held_out)} held-out {dataset} records: accuracy "
            f"{accuracy:.3f} (chance {1 / network.num_classes:.2f}; a figure from held-out records, not covered by "
            "the DP guarantee; `tfdpgen evaluate --run` gives more)")
