"""One training run from data to a served model: what `tfdpgen train` does, callable from Python.

A run directory holds run.json (the settings), checkpoints/, .secrets.json while training, and, once finished,
privacy.json (written last), privacy.txt, samples.png and saved_model/1/. Calling `train_run` again on an unfinished
run resumes it from its last readable checkpoint.
"""
import dataclasses
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import tensorflow as tf

from tfdpgen import __version__
from tfdpgen._compat import TF_PRIVACY_INSTALL, has_tf_privacy
from tfdpgen.checkpoints import INSECURE_NOISE_WARNING, RunCheckpoint, delete_secrets, load_or_create_secrets
from tfdpgen.data.images import DataError, load_images, public_images
from tfdpgen.data.sampling import distributed_private_batches, new_seed
from tfdpgen.evaluation.images import tstr_accuracy
from tfdpgen.evaluation.plots import save_column_histograms, save_image_grid
from tfdpgen.export.saved_model import export_sampler
from tfdpgen.data.tables import DATAFRAME, TableSchema, is_frame, load_table
from tfdpgen.models.diffusion import PRETRAIN_EPOCHS, DPDiffusion
from tfdpgen.models.gan import DPGAN
from tfdpgen.models.marginal import DPMarginalTable
from tfdpgen.models.merf import DPMERF
from tfdpgen.models.sinkhorn import DPSinkhorn
from tfdpgen.models.tabular_gan import MARGINALS, DPTableGAN, release_noise_multiplier
from tfdpgen.models.vae import DPVAE
from tfdpgen.privacy import accounting
from tfdpgen.privacy.optimizers import canonical_name, make_optimizer
from tfdpgen.privacy.report import privacy_statement
from tfdpgen.privacy.ledger import PrivacyLedger
from tfdpgen.privacy.releases import gaussian_release
from tfdpgen.privacy.settings import PrivacySettings, default_delta
from tfdpgen.strategies import make_strategy

MODELS = {"vae": DPVAE, "gan": DPGAN, "cgan": DPGAN, "tabgan": DPTableGAN, "diffusion": DPDiffusion,
          "sinkhorn": DPSinkhorn, "marginal": DPMarginalTable, "merf": DPMERF}
TABLE_MODELS = ("tabgan", "marginal")
ADVERSARIAL_MODELS = ("gan", "cgan", "tabgan")
# image families that take the labels (the label set is public schema)
CONDITIONAL_IMAGE_MODELS = ("vae", "cgan", "sinkhorn", "merf", "diffusion")
DEFAULT_DATASETS = {"tabgan": "breast_cancer", "marginal": "breast_cancer"}
# What a run uses for a setting it is not given: DEFAULTS, with its family's recipe on top. learning_rate is that of
# the privately trained network(s) (Adam; GAN discriminators learn slower so that their generators keep up). Chosen on
# scikit-learn's public digits (the default data), by the train-on-synthetic accuracy on its held-out digits at
# epsilon 3: the conditional VAE reaches 0.86-0.89 with batch 256 for 120 epochs at 1e-2 (0.66 with batch 64 for 30
# epochs at 5e-3). The GANs need many steps: without noise the conditional GAN reached 0.40 in 30 epochs, 0.68 in 60,
# 0.91 in 150 (0.65 and 0.69 in two runs at epsilon 3); on the digits placed in 28x28 at epsilon 10, DP-GAN's several
# discriminator steps per generator step (5, in the same 150 epochs: a fifth of the generator steps) gave 0.652 against
# 0.744 at 1 (one seed each), so the image GANs keep 1. DP-Sinkhorn's per-record gradients with respect to the
# generated batch have norms near 0.05: clipped at 1, the noise drowns them (0.18), clipped at 0.05 it reaches 0.82;
# with a sharper transport plan (entropic epsilon 0.005, models/sinkhorn.py) and clipped at 0.01: 0.86. On the digits
# placed in 28x28 the same change took it from 0.90 to 0.94 without noise and from 0.63 to 0.90 at epsilon 10.
# The tabular GAN: the DP-GAN recipe (5 discriminator steps per generator step, as DPImageBench's DP-GAN configs; a
# larger batch, 256) with marginal anchoring (models/tabular_gan.py); without noise it reached 1-way TV 0.049 and
# boosted-trees AUC 0.890 on Adult (rows 0..31999 trained, 32000..39999 scored; batch 64 with one step each: 0.033 and
# 0.898 in twice the time).
DEFAULTS = {"batch_size": 64, "epochs": 30, "l2_norm_clip": 1.0}
RECIPES = {"vae": {"batch_size": 256, "epochs": 120, "learning_rate": 1e-2},
           "gan": {"epochs": 150, "learning_rate": 5e-4},
           "cgan": {"epochs": 150, "learning_rate": 5e-4},
           "tabgan": {"learning_rate": 5e-4, "batch_size": 256, "discriminator_steps": 5},
           "diffusion": {"learning_rate": 2e-3},
           "sinkhorn": {"learning_rate": 5e-3, "l2_norm_clip": 0.01}}


# 28x28 images (MNIST, Fashion-MNIST) change what a network can take: the conditional VAE's convolutional networks
# diverged at the digits' 1e-2 on MNIST (train-on-synthetic accuracy 0.13 at epsilon 10). Chosen on public data, the
# 1,797 scikit-learn digits placed in 28x28 images as MNIST's 20x20 box (1,438 train, 359 held out), latent 4, at
# epsilon 10: 0.58 at 1e-3, 0.79 at 3e-3, 0.66 at 1e-2 (batch 128 for 60 epochs at 1e-3: 0.54); without noise 0.86.
# The diffusion model's denoiser costs about 2 s a step for 512 images on 28x28 (2 CPU cores with oneDNN): 30 epochs of
# the 8,000-image split at batch 512 are 470 steps, about 16 minutes (and --pretrain's 150 epochs of the public digits
# at batch 128, 2,100 steps, about 18). Spent as batch 512 with one noise draw each (K = 1) rather than batch 128 with
# K = 4 (DPDM's noise multiplicity), the DP noise on the mean gradient, sigma / B at epsilon 10 and delta 1e-5, falls
# from 0.0051 to 0.0020 (accountant's calibration for the 8,000-image split; K does not enter it).
RECIPES_28X28 = {"vae": {"learning_rate": 3e-3},
                 "diffusion": {"batch_size": 512, "epochs": 30, "network": {"multiplicity": 1}}}


def recipe(model: str, record_shape=None) -> dict:
    """The settings `model` trains with where none is given (`record_shape`: one record's, for size-specific ones)."""
    settings = {**DEFAULTS, **RECIPES[model]}
    if tuple(record_shape or ()) == (28, 28, 1):
        settings.update(RECIPES_28X28.get(model, {}))
    return settings


# Families that can fit their private networks to public data before DP training (PRETRAIN_EPOCHS by default).
PRETRAINED_MODELS = ("diffusion",)

DEFAULT_EPSILON = 3.0
FINISHED_MARKER = "privacy.json"  # written last: its presence means the run finished
RUN_CONFIG = "run.json"
SPLIT = "split.json"  # which records trained the model and which were held out


class RunDirectoryError(ValueError):
    """The output directory cannot take this run; nothing in it was touched."""


def default_output(model: str, dataset: str) -> str:
    return os.path.join("runs", f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def check_output_dir(path: str, config: dict) -> bool:
    """True when `path` holds an unfinished run of the same settings (resume), False when it is new or empty."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirectoryError(f"--output {path} is a file; give a directory.")
    if os.path.exists(os.path.join(path, FINISHED_MARKER)):
        raise RunDirectoryError(f"--output {path} already holds a finished run (it has {FINISHED_MARKER}); give a new "
                                "directory. Nothing was overwritten.")
    if not os.path.isdir(path) or not os.listdir(path):
        return False
    if not os.path.exists(os.path.join(path, RUN_CONFIG)):
        raise RunDirectoryError(f"--output {path} holds files that are not a tfdpgen run; give a new or empty "
                                "directory. Nothing was overwritten.")
    with open(os.path.join(path, RUN_CONFIG)) as f:
        saved = json.load(f)
    changed = [f"{key}: {saved.get(key)!r} -> {value!r}" for key, value in config.items() if saved.get(key) != value]
    if changed:
        raise RunDirectoryError(f"--output {path} holds an unfinished run with other settings ({'; '.join(changed)}). "
                                "Resume it with its own settings, or give a new directory. Nothing was overwritten.")
    return True


def fit_to(network, total_steps, batches, callbacks, verbose):
    """Train until `dp_steps` reaches `total_steps`, keeping epoch boundaries where an uninterrupted run has them."""
    per_epoch = network.privacy.steps_per_epoch
    done = int(network.dp_steps.numpy())
    if done % per_epoch and done < total_steps:  # resumed inside an epoch: finish that epoch first
        epoch = done // per_epoch
        network.fit(batches(), initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks, verbose=verbose,
                    steps_per_epoch=min(per_epoch - done % per_epoch, total_steps - done))
        done = int(network.dp_steps.numpy())
    if done < total_steps:
        network.fit(batches(), initial_epoch=done // per_epoch, epochs=-(-total_steps // per_epoch),
                    steps_per_epoch=per_epoch, callbacks=callbacks, verbose=verbose)


def load_data(model, dataset, data_dir, schema, frame=None):
    """(records, labels, the loaded data) for the family: an image set, or an encoded table (`frame`: a DataFrame)."""
    if model in TABLE_MODELS:
        table = load_table(dataset, data_dir, schema, frame)
        return table.features, table.labels, table
    images = load_images(dataset, data_dir)
    return images.images, images.labels, images


def release_marginals(network, records, labels, noise_multiplier, noise_key, ledger, record_only=False):
    """The tabular GAN's marginals, released once with Gaussian noise (noise_multiplier x their sensitivity) drawn from
    the run's secret noise key, and given to the network; exact without noise (a run without DP)."""
    counts, sensitivity = network.marginal_counts(records, labels)
    if record_only:
        if noise_multiplier > 0:
            ledger.gaussian(noise_multiplier * sensitivity, sensitivity, MARGINALS)
    elif noise_multiplier == 0:
        network.set_marginals(counts)
    else:
        rng = np.random.default_rng([noise_key, 16])  # its own stream, apart from the DP steps' noise
        network.set_marginals(gaussian_release(counts, noise_multiplier * sensitivity, sensitivity, rng, ledger,
                                               MARGINALS))


def build_model(model, data, seed, latent_dim, discriminator_steps=None, network=None):
    """The family's model for `data`; `network`: constructor settings from its recipe (RECIPES_28X28)."""
    kwargs = {"seed": seed} if latent_dim is None else {"seed": seed, "latent_dim": latent_dim}
    kwargs.update(network or {})
    if discriminator_steps is not None:
        kwargs["discriminator_steps"] = discriminator_steps
    if model in TABLE_MODELS:
        return MODELS[model](schema=data.schema, **kwargs)
    kwargs["image_shape"] = data.images.shape[1:]
    if model in CONDITIONAL_IMAGE_MODELS:
        kwargs["num_classes"] = int(data.labels.max()) + 1  # the label set is schema, not protected
    if model == "diffusion":
        kwargs.pop("latent_dim", None)  # its latent is the image itself
    return MODELS[model](**kwargs)


def held_out_count(size: int, holdout) -> int:
    """How many records, at the end of the data, are held out: `holdout` is a fraction in [0, 1) or a count."""
    if isinstance(holdout, float) and 0 <= holdout < 1:
        count = int(round(size * holdout))
    elif isinstance(holdout, int) and not isinstance(holdout, bool) and 0 <= holdout < size:
        count = holdout
    else:
        raise ValueError(f"--holdout must be a fraction in [0, 1) or a number of records below {size}, got "
                         f"{holdout!r}.")
    if size - count < 2:
        raise ValueError(f"--holdout {holdout} leaves {size - count} training records of {size}: hold out fewer.")
    return count


HOLDOUT_ORDERS = ("random", "tail")
HOLDOUT_SEED = 0  # public: which records are held out is not a secret, the records are


def split_indices(size: int, count: int, order: str):
    """(train indices, held-out indices), each sorted. "random": a uniformly random subset (fixed public seed), so
    training and held-out records are exchangeable, as membership-inference audits assume; "tail": the last `count`
    records in file order (a fixed split such as ../shared/data's)."""
    if order not in HOLDOUT_ORDERS:
        raise ValueError(f"--holdout-order must be one of {HOLDOUT_ORDERS}, got {order!r}.")
    if order == "tail":
        return np.arange(size - count), np.arange(size - count, size)
    held_out = np.sort(np.random.default_rng(HOLDOUT_SEED).permutation(size)[:count])
    return np.setdiff1d(np.arange(size), held_out), held_out


def write_run_files(output: str, config: dict, records: int, held_out: int, order: str) -> None:
    """run.json (the settings) and split.json (which records trained the model) of a new run."""
    with open(os.path.join(output, RUN_CONFIG), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(output, SPLIT), "w") as f:
        json.dump({"records": records, "held_out_count": held_out, "order": order, "seed": HOLDOUT_SEED,
                   "note": "record indices in the order the data set loads; held_out_indices never trained the model",
                   "held_out_indices": split_indices(records, held_out, order)[1].tolist()}, f)


def load_split(run_dir: str, frame=None):
    """(train records, train labels, held-out records, held-out labels, data, split) of a run: its data reloaded
    and split as split.json says (a run that trained on a DataFrame needs it again as `frame`)."""
    with open(os.path.join(run_dir, RUN_CONFIG)) as f:
        config = json.load(f)
    with open(os.path.join(run_dir, SPLIT)) as f:
        split = json.load(f)
    records, labels, data = load_data(config["model"], config["dataset"], config["data_dir"], config.get("schema"),
                                      frame)
    if len(records) != split["records"]:
        raise RunDirectoryError(f"the data of {run_dir} now has {len(records)} records, the run had "
                                f"{split['records']}: the held-out part cannot be recovered.")
    train, held_out = split_indices(split["records"], split["held_out_count"], split["order"])
    return records[train], labels[train], records[held_out], labels[held_out], data, split


def finished_run_report(run_dir: str) -> dict:
    """The privacy.json of the finished run in `run_dir`, or one clear error saying why it is not one."""
    if not os.path.isdir(run_dir):
        raise RunDirectoryError(f"--run {run_dir} is not a directory: give a run directory that `tfdpgen train` wrote.")
    if not os.path.exists(os.path.join(run_dir, RUN_CONFIG)):
        raise RunDirectoryError(f"--run {run_dir} is not a tfdpgen run (no {RUN_CONFIG}): give a run directory that "
                                "`tfdpgen train` wrote.")
    if not os.path.exists(os.path.join(run_dir, FINISHED_MARKER)):
        raise RunDirectoryError(f"{run_dir} is not a finished tfdpgen run (no {FINISHED_MARKER}); finish training it "
                                "first (run the same `tfdpgen train` command again to resume).")
    try:
        with open(os.path.join(run_dir, FINISHED_MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise RunDirectoryError(f"{run_dir}/{FINISHED_MARKER} cannot be read ({error}): the run is damaged.") from None


def load_trained(run_dir: str):
    """The generator of a finished run, rebuilt from its export's metadata and restored from its last checkpoint.
    Returns (model, metadata)."""
    finished_run_report(run_dir)
    with open(os.path.join(run_dir, "saved_model", "1", "assets", "tfdpgen.json")) as f:
        metadata = json.load(f)
    family = metadata["family"]
    kwargs = {"latent_dim": metadata["latent_dim"]}
    if family == "marginal":
        kwargs = {"schema": TableSchema.from_dict(metadata["schema"]), "components": metadata["components"],
                  "bins": metadata["bins"]}
    elif family in TABLE_MODELS:
        kwargs["schema"] = TableSchema.from_dict(metadata["schema"])
    else:
        kwargs["image_shape"] = metadata["image_shape"]
        if family in CONDITIONAL_IMAGE_MODELS:
            kwargs["num_classes"] = metadata["num_classes"]
        if family == "diffusion":
            kwargs.pop("latent_dim")
            # the denoiser as it was trained (runs from before 2x2 patches have none: patch 1)
            kwargs.update({key: metadata[key] for key in ("multiplicity", "sample_steps", "width", "guidance")
                           if key in metadata}, patch=metadata.get("patch", 1))
        if family == "merf":
            kwargs.update({key: metadata[key] for key in ("frequencies", "bandwidth", "feature_seed")})
        if family == "sinkhorn":  # runs from before the wider generator have none: width 1
            kwargs["generator_width"] = metadata.get("generator_width", 1)
    network = MODELS[family](**kwargs)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise RunDirectoryError(f"{run_dir}/checkpoints holds no checkpoint to export from.")
    tf.train.Checkpoint(model=network).read(latest).expect_partial()
    return network, metadata


def train_run(model="vae", dataset=None, data_dir=None, epsilon=None, delta=None, noise_multiplier=None,
              l2_norm_clip=None, epochs=None, batch_size=None, sampling="poisson", accountant="rdp", optimizer="dp-adam",
              learning_rate=None, latent_dim=None, output=None, seed=None, strategy="default", devices=None,
              checkpoint_every=100, engine="fast", clipping="fixed", target_quantile=0.5, dp2_delay=100,
              dp2_learning_rate=None, schema=None, holdout=0.2, holdout_order="random", insecure_noise_seed=None,
              verbose=1, marginal=None, discriminator_steps=None, merf=None, pretrain=None,
              pretrain_epochs=None) -> str:
    """Train a DP generator into `output`, or resume the unfinished run there. Returns the run directory.

    `holdout` of the records (a fraction, or a count; a random subset, or the last ones with holdout_order="tail")
    are held out: no network trains on them, and split.json records which they are, for `tfdpgen evaluate`.

    `seed` fixes the initial weights and the model's own randomness (a VAE's draws, a GAN's latents), none of which is
    DP noise. The DP noise key and the sampling seed always come from OS entropy and never reach a file that outlives
    training, unless `insecure_noise_seed` (tests and debugging) derives them; privacy.json then says the guarantee
    holds only while that seed is secret. Its value is never written (run.json records whether it was given); `seed`,
    no secret, is recorded in run.json.

    Every check (output directory, data, settings, strategy) runs before anything is written or trained.

    Tables: `dataset` may be a pandas DataFrame, with `schema` (a dict in the JSON schema's layout, a path, or a
    TableSchema); tfdpgen keeps no copy of it, so resuming or evaluating the run takes the same DataFrame again.

    `model="marginal"` takes no DP-SGD step (marginal_training.train_marginal_run; `marginal` holds its own settings,
    components, bins and independence) and refuses DP-SGD settings given to it; nor does `model="merf"`
    (merf_training; `merf` holds its frequencies and fit_steps).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {sorted(MODELS)}.")
    frame, dataset = (dataset, DATAFRAME) if is_frame(dataset) else (None, dataset)
    if frame is not None and model not in TABLE_MODELS:
        raise ValueError(f"a DataFrame is a table: train it with --model {' or '.join(TABLE_MODELS)}, not {model}.")
    if isinstance(schema, TableSchema):
        schema = schema.to_dict()  # run.json records the schema as given
    if marginal and model != "marginal":
        raise ValueError(f"--components, --bins and --independence are settings of the marginal family, "
                         f"not of {model}.")
    if merf and model != "merf":
        raise ValueError(f"--frequencies and --fit-steps are settings of DP-MERF (--model merf), not of {model}.")
    if model == "marginal":  # no DP-SGD steps: measured marginals and a fit (marginal_training)
        from tfdpgen.marginal_training import train_marginal_run
        return train_marginal_run(
            dataset=dataset, frame=frame, data_dir=data_dir, schema=schema, epsilon=epsilon, delta=delta,
            noise_multiplier=noise_multiplier, output=output, seed=seed, holdout=holdout, holdout_order=holdout_order,
            insecure_noise_seed=insecure_noise_seed, verbose=verbose, epochs=epochs, batch_size=batch_size,
            l2_norm_clip=l2_norm_clip, learning_rate=learning_rate, latent_dim=latent_dim,
            dp2_learning_rate=dp2_learning_rate, sampling=sampling, accountant=accountant, optimizer=optimizer,
            clipping=clipping, engine=engine, strategy=strategy, discriminator_steps=discriminator_steps,
            **(marginal or {}))
    if model == "merf":  # no DP-SGD steps: one release of mean embeddings and a fit (merf_training)
        from tfdpgen.merf_training import train_merf_run
        return train_merf_run(
            dataset=dataset, data_dir=data_dir, epsilon=epsilon, delta=delta, noise_multiplier=noise_multiplier,
            output=output, seed=seed, holdout=holdout, holdout_order=holdout_order,
            insecure_noise_seed=insecure_noise_seed, verbose=verbose, epochs=epochs, batch_size=batch_size,
            l2_norm_clip=l2_norm_clip, learning_rate=learning_rate, latent_dim=latent_dim,
            dp2_learning_rate=dp2_learning_rate, sampling=sampling, accountant=accountant, optimizer=optimizer,
            clipping=clipping, engine=engine, strategy=strategy, discriminator_steps=discriminator_steps, **(merf or {}))
    if checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be at least 1 step, got {checkpoint_every}.")
    for flag, rate in (("--learning-rate", learning_rate), ("--dp2-learning-rate", dp2_learning_rate)):
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"{flag} must be a positive number (a negative one climbs the loss), got {rate!r}; leave "
                             "it unset for the model's default.")
    if seed is not None and not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be a whole number in [0, 2**32), got {seed}.")
    if insecure_noise_seed is not None and not 0 <= insecure_noise_seed < 2**61:
        raise ValueError(f"--insecure-noise-seed must be a whole number in [0, 2**61), got {insecure_noise_seed}.")
    if epsilon is None and noise_multiplier is None:
        epsilon = DEFAULT_EPSILON
    dataset = dataset or DEFAULT_DATASETS.get(model, "digits")
    if pretrain is None and pretrain_epochs is not None:
        raise ValueError("--pretrain-epochs is a setting of --pretrain: name the public data set too.")
    if pretrain is not None and model not in PRETRAINED_MODELS:
        raise ValueError(f"--pretrain is available for {', '.join(PRETRAINED_MODELS)}, not {model}.")
    if pretrain_epochs is not None and not (isinstance(pretrain_epochs, int) and pretrain_epochs >= 1):
        raise ValueError(f"--pretrain-epochs must be a whole number of at least 1, got {pretrain_epochs!r}.")
    records, labels, data = load_data(model, dataset, data_dir, schema, frame)
    public = None if pretrain is None else public_images(pretrain, records.shape[1:], dataset)
    if public is not None and public.labels.max() > labels.max():
        raise DataError(f"--pretrain {pretrain} has labels up to {public.labels.max()}, the private data up to "
                        f"{labels.max()}: its classes must be the private data's.")
    defaults = recipe(model, records.shape[1:])
    learning_rate = defaults["learning_rate"] if learning_rate is None else learning_rate
    epochs = defaults["epochs"] if epochs is None else epochs
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    l2_norm_clip = defaults["l2_norm_clip"] if l2_norm_clip is None else l2_norm_clip
    optimizer = canonical_name(optimizer)
    if model in ADVERSARIAL_MODELS:
        if discriminator_steps is None:
            discriminator_steps = defaults.get("discriminator_steps", 1)
        if not (isinstance(discriminator_steps, int) and discriminator_steps >= 1):
            raise ValueError("--discriminator-steps must be a whole number of at least 1, got "
                             f"{discriminator_steps!r}.")
    elif discriminator_steps is not None:
        raise ValueError(f"--discriminator-steps is a setting of the GANs ({', '.join(ADVERSARIAL_MODELS)}), not of "
                         f"{model}.")
    config = {"model": model, "dataset": dataset, "data_dir": data_dir, "epsilon": epsilon, "delta": delta,
              "noise_multiplier": noise_multiplier, "l2_norm_clip": l2_norm_clip, "epochs": epochs,
              "batch_size": batch_size, "sampling": sampling, "accountant": accountant, "optimizer": optimizer,
              "learning_rate": learning_rate, "latent_dim": latent_dim, "seed": seed, "clipping": clipping,
              "target_quantile": target_quantile, "dp2_delay": dp2_delay, "dp2_learning_rate": dp2_learning_rate,
              "schema": schema, "holdout": holdout, "holdout_order": holdout_order,
              "insecure_noise_seed_given": insecure_noise_seed is not None}
    if discriminator_steps is not None:
        config["discriminator_steps"] = discriminator_steps
    if "network" in defaults:
        config["network"] = defaults["network"]
    if pretrain is not None:
        pretrain_epochs = PRETRAIN_EPOCHS if pretrain_epochs is None else pretrain_epochs
        config["pretrain"] = {"dataset": pretrain, "epochs": pretrain_epochs}
    output = output or default_output(model, dataset)
    resuming = check_output_dir(output, config)
    distribution = make_strategy(strategy, devices)
    total = len(records)
    held_out = held_out_count(total, holdout)
    train_indices, held_out_indices = split_indices(total, held_out, holdout_order)
    held_out_records = (records[held_out_indices], labels[held_out_indices])
    records, labels = records[train_indices], labels[train_indices]
    # Deterministic kernels make a replayed step bit-identical to the lost one (see checkpoints.py); they require a
    # global seed, which only the initial weights depend on (noise and batches come from the run's secrets).
    tf.keras.utils.set_random_seed(new_seed() % 2**31 if seed is None else seed)
    tf.config.experimental.enable_op_determinism()
    with distribution.scope():
        network = build_model(model, data, seed, latent_dim, discriminator_steps, defaults.get("network"))
    settings = PrivacySettings(dataset_size=len(records), batch_size=batch_size, epochs=epochs,
                               l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier, target_epsilon=epsilon,
                               delta=delta, sampling=sampling, accountant=accountant, clipping=clipping,
                               target_quantile=target_quantile)
    if getattr(network, "anchors_marginals", False):  # the tabular GAN's one-shot release, composed with its steps
        release = release_noise_multiplier(noise_multiplier, epsilon, settings.delta or default_delta(len(records)),
                                           settings.sampling_probability, settings.steps)
        settings = dataclasses.replace(settings, release_noise_multiplier=release)
    settings = settings.resolved()

    make_optimizer(optimizer, settings, learning_rate, engine, dp2_delay, dp2_learning_rate)  # checks, before writing
    os.makedirs(output, exist_ok=True)
    if not resuming:
        write_run_files(output, config, total, held_out, holdout_order)
    secrets = load_or_create_secrets(output, insecure_noise_seed)
    with distribution.scope():
        network.compile(privacy=settings, optimizer=optimizer, learning_rate=learning_rate,
                        noise_key=secrets["noise_key"], engine=engine, dp2_delay=dp2_delay,
                        dp2_learning_rate=dp2_learning_rate)
        network.optimizer._create_all_weights(network.trainable_variables)
    ledger = PrivacyLedger()
    if settings.release_noise_multiplier is not None:
        release_marginals(network, records, labels, settings.release_noise_multiplier, secrets["noise_key"], ledger,
                          record_only=resuming)  # a resumed run has them in its checkpoint
    checkpoint = RunCheckpoint(os.path.join(output, "checkpoints"), network, checkpoint_every)
    if resuming:
        checkpoint.restore_latest()  # with the public pretraining, if any, inside
    else:
        if public is not None:  # no private record, no privacy spent: before DP step 0
            if verbose:
                print(f"pretraining on {len(public.images)} public {pretrain} images, {pretrain_epochs} epochs, "
                      "without DP")
            network.pretrain(public.images, public.labels, pretrain_epochs, learning_rate=learning_rate,
                             seed=0 if seed is None else seed, verbose=verbose)
        checkpoint.save()  # step 0: from here on, a run directory always has a checkpoint to resume from
    total = settings.steps
    if settings.target_epsilon is not None:
        total = min(total, accounting.max_steps_within(settings.target_epsilon, settings.noise_multiplier,
                                                       settings.sampling_probability, settings.delta,
                                                       settings.accountant, release=settings.release_noise_multiplier))
    if verbose:
        print(f"DP training {model} on {dataset} ({settings.dataset_size} records, {distribution.num_replicas_in_sync} "
              f"replica(s), {engine} engine, {network.optimizer_name}): noise_multiplier "
              f"{settings.noise_multiplier:.4f}, {clipping} clip {settings.l2_norm_clip}, {settings.sampling} sampling q={settings.sampling_probability:.4f}, {total} steps, delta "
              f"{settings.delta:.0e}" + (f"; resuming at step {int(network.dp_steps.numpy())}" if resuming else ""))
        if not has_tf_privacy():
            print(f"TensorFlow Privacy is not installed: privacy.txt will not hold its statement and --engine "
                  f"vectorized is unavailable (add it: {TF_PRIVACY_INSTALL})")
    if insecure_noise_seed is not None:
        print(f"tfdpgen: warning: {INSECURE_NOISE_WARNING}", file=sys.stderr)
    fit_to(network, total,
           lambda: distributed_private_batches(records, labels, settings, distribution,
                                               secrets["sampling_seed"], network.dp_steps),
           [checkpoint], verbose)
    checkpoint.save()
    report = network.privacy_report()
    if ledger.releases:
        report["releases"] = ledger.to_list()
    if pretrain is not None:
        report["public_pretraining"] = {**config["pretrain"], "privacy_cost": "none: public data, no private record"}
    finish_run(output, network, model, dataset, report, privacy_statement(settings, report["steps"]), verbose,
               insecure_noise_seed is not None)
    if verbose and model in CONDITIONAL_IMAGE_MODELS and len(held_out_records[0]) >= 20:
        print(synthetic_accuracy_line(network, *held_out_records, dataset))
    return output


def synthetic_accuracy_line(network, held_out, held_out_labels, dataset, count=2000) -> str:
    """What the synthetic data is worth, in one line: the evaluation's small CNN trained on `count` class-balanced
    samples, scored on the held-out records (train on synthetic, test on real)."""
    labels = np.arange(count) % network.num_classes
    accuracy = tstr_accuracy(network.sample(count, seed=1, labels=labels), labels, held_out, held_out_labels,
                             network.num_classes)
    return (f"train on {count} synthetic, test on the {len(held_out)} held-out {dataset} records: accuracy "
            f"{accuracy:.3f} (chance {1 / network.num_classes:.2f}; a figure from held-out records, not covered by "
            "the DP guarantee; `tfdpgen evaluate --run` gives more)")


def finish_run(output, network, model, dataset, report, statement, verbose=1, insecure_noise=False):
    """Write the export, the pictures and `statement` (privacy.txt), then `report` as privacy.json last; drop the
    secrets."""
    report["reproducible_noise"] = insecure_noise
    if insecure_noise:
        report["warning"] = INSECURE_NOISE_WARNING
    metadata = {"family": model, "dataset": dataset, "latent_dim": network.latent_dim,
                "num_classes": network.num_classes, "privacy": report, "tfdpgen_version": __version__,
                "tensorflow_version": tf.__version__}
    if model in TABLE_MODELS:
        metadata["schema"] = network.schema.to_dict()
    else:
        metadata["image_shape"] = list(network.image_shape)
    if model == "marginal":
        metadata.update(components=network.components, bins=network.bins)
    if model in ("merf", "diffusion"):  # what rebuilds the network (load_trained)
        metadata.update(network.get_config())
    if model == "sinkhorn":  # not its whole config: its entropic "epsilon" would read as the privacy budget's
        metadata["generator_width"] = network.generator_width
    partial = os.path.join(output, "saved_model", ".1.partial")
    final = os.path.join(output, "saved_model", "1")
    for leftover in (partial, final):  # an export of this unfinished run, interrupted before privacy.json
        shutil.rmtree(leftover, ignore_errors=True)
    export_sampler(network, partial, metadata=metadata)
    os.replace(partial, final)
    title = (f"DP-{model.upper()} on {dataset}, epsilon={report['epsilon']:.3g}, delta={report['delta']:.0e}"
             if report["epsilon"] is not None else f"{model} on {dataset}, no DP")
    if model in TABLE_MODELS:
        save_column_histograms(network.sample(1000, seed=0), os.path.join(output, "samples.png"), title=title)
    elif network.num_classes:  # one column per class
        labels = np.tile(np.arange(network.num_classes), 8)
        save_image_grid(network.sample(len(labels), seed=0, labels=labels), os.path.join(output, "samples.png"),
                        columns=network.num_classes, title=title)
    else:
        save_image_grid(network.sample(64, seed=0), os.path.join(output, "samples.png"), title=title)
    with open(os.path.join(output, "privacy.txt"), "w") as f:
        f.write(statement)
    with open(os.path.join(output, FINISHED_MARKER), "w") as f:
        json.dump(report, f, indent=2)
    delete_secrets(output)
    if verbose:
        spent = f"in {report['steps']} steps" if "steps" in report else f"in {len(report['releases'])} releases"
        print(f"spent epsilon={report['epsilon']} at delta={report['delta']:.0e} {spent}; wrote {output}/ "
              "(privacy.json, samples.png, saved_model/1)")
