"""One training run from data to a served model: what `tfdpgen train` does, callable from Python."""
import json
import os
import time

import tensorflow as tf

from tfdpgen.data.images import load_images
from tfdpgen.data.sampling import new_seed, private_batches
from tfdpgen.evaluation.plots import save_image_grid
from tfdpgen.export.saved_model import export_sampler
from tfdpgen.models.vae import DPVAE
from tfdpgen.privacy.report import privacy_statement
from tfdpgen.privacy.settings import PrivacySettings

MODELS = {"vae": DPVAE}
DEFAULT_EPSILON = 3.0
FINISHED_MARKER = "privacy.json"  # written last: its presence means the run finished


class RunDirectoryError(ValueError):
    """The output directory cannot take this run; nothing in it was touched."""


def default_output(model: str, dataset: str) -> str:
    return os.path.join("runs", f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def check_output_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirectoryError(f"--output {path} is a file; give a directory that does not exist yet.")
    if os.path.exists(os.path.join(path, FINISHED_MARKER)):
        raise RunDirectoryError(f"--output {path} already holds a finished run (it has {FINISHED_MARKER}); give a new "
                                "directory. Nothing was overwritten.")
    if os.path.isdir(path) and os.listdir(path):
        raise RunDirectoryError(f"--output {path} already holds files of another, unfinished run; give a new or empty "
                                "directory. Nothing was overwritten.")


def train_run(model="vae", dataset="digits", data_dir=None, epsilon=None, delta=None, noise_multiplier=None,
              l2_norm_clip=1.0, epochs=30, batch_size=64, sampling="poisson", accountant="rdp", optimizer="adam",
              learning_rate=5e-3, latent_dim=None, output=None, seed=None, verbose=1) -> str:
    """Train a DP generator and write privacy.json, privacy.txt, samples.png and saved_model/1/ into `output`.

    Every check (output directory, data, settings) runs before the first training step.
    """
    output = output or default_output(model, dataset)
    check_output_dir(output)
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {sorted(MODELS)}.")
    data = load_images(dataset, data_dir)
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    network = MODELS[model](image_shape=data.images.shape[1:], **({} if latent_dim is None else {"latent_dim": latent_dim}))
    if epsilon is None and noise_multiplier is None:
        epsilon = DEFAULT_EPSILON
    settings = PrivacySettings(dataset_size=len(data.images), batch_size=batch_size, epochs=epochs,
                               l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier, target_epsilon=epsilon,
                               delta=delta, sampling=sampling, accountant=accountant).resolved()
    network.compile(privacy=settings, optimizer=optimizer, learning_rate=learning_rate)
    if verbose:
        print(f"DP training {model} on {dataset} ({settings.dataset_size} records): noise_multiplier "
              f"{settings.noise_multiplier:.4f}, clip {settings.l2_norm_clip}, {settings.sampling} sampling q="
              f"{settings.sampling_probability:.4f}, {settings.steps} steps, delta {settings.delta:.0e}")
    batches = private_batches(data.images, data.labels, settings, seed=new_seed() if seed is None else seed)
    network.fit(batches, epochs=epochs, steps_per_epoch=settings.steps_per_epoch, verbose=verbose)

    os.makedirs(output, exist_ok=True)
    report = network.privacy_report()
    metadata = {"family": model, "dataset": dataset, "image_shape": list(network.image_shape),
                "latent_dim": network.latent_dim, "privacy": report}
    export_sampler(network, os.path.join(output, "saved_model", "1"), metadata=metadata)
    save_image_grid(network.sample(64, seed=0), os.path.join(output, "samples.png"),
                    title=f"DP-{model.upper()} on {dataset}, epsilon={report['epsilon']:.3g}, delta={report['delta']:.0e}"
                    if report["epsilon"] is not None else f"{model} on {dataset}, no DP")
    with open(os.path.join(output, "privacy.txt"), "w") as f:
        f.write(privacy_statement(settings, report["steps"]))
    with open(os.path.join(output, "run.json"), "w") as f:
        json.dump({"model": model, "dataset": dataset, "data_dir": data_dir, "optimizer": optimizer,
                   "learning_rate": learning_rate, "latent_dim": network.latent_dim}, f, indent=2)
    with open(os.path.join(output, FINISHED_MARKER), "w") as f:
        json.dump(report, f, indent=2)
    if verbose:
        print(f"spent epsilon={report['epsilon']} at delta={report['delta']:.0e} in {report['steps']} steps; "
              f"wrote {output}/ (privacy.json, samples.png, saved_model/1)")
    return output
