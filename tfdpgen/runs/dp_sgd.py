"""The DP-SGD trainer: a family whose train_step takes noised per-example gradients, trained by `model.fit` into its run
directory with checkpoints, and resumed from its last readable checkpoint without resetting the privacy count."""
import dataclasses
import sys

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfdpgen._compat import TF_PRIVACY_INSTALL, has_tf_privacy
from tfdpgen.data.images import DataError, public_images
from tfdpgen.data.sampling import distributed_private_batches, new_seed
from tfdpgen.models.tabular_gan import MARGINALS, RELEASE_SHARE
from tfdpgen.privacy import accounting
from tfdpgen.privacy.optimizers import make_optimizer
from tfdpgen.privacy.releases import gaussian_release
from tfdpgen.privacy.report import privacy_statement
from tfdpgen.privacy.ledger import PrivacyLedger
from tfdpgen.privacy.settings import PrivacySettings, default_delta
from tfdpgen.runs.checkpoints import INSECURE_NOISE_WARNING, RunCheckpoint
from tfdpgen.runs.finish import closing_accuracy_line, finish_run
from tfdpgen.runs.split import load_records, split
from tfdpgen.runs.strategies import make_strategy


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


def privacy_settings(config, dataset_size, anchors_marginals) -> PrivacySettings:
    """The run's resolved DP-SGD settings (the noise calibrated to the target, if one is given)."""
    settings = PrivacySettings(
        dataset_size=dataset_size, batch_size=config.batch_size, epochs=config.epochs,
        l2_norm_clip=config.l2_norm_clip, noise_multiplier=config.noise_multiplier, target_epsilon=config.epsilon,
        delta=config.delta, sampling=config.sampling, accountant=config.accountant, clipping=config.clipping,
        target_quantile=config.target_quantile)
    if anchors_marginals:  # the tabular GAN's one-shot release, composed with its steps
        release = accounting.release_noise_multiplier(config.noise_multiplier, config.epsilon,
                                                      settings.delta or default_delta(dataset_size),
                                                      settings.sampling_probability, settings.steps, RELEASE_SHARE)
        settings = dataclasses.replace(settings, release_noise_multiplier=release)
    return settings.resolved()


def train_dp_sgd(config, run) -> str:
    """Train (or resume) the DP-SGD run `config` (runs.config.RunConfig) in `run` (a RunDirectory)."""
    family, performance, verbose = config.family, config.performance, config.verbose
    records, labels, data = load_records(family, config.dataset, config.data_dir, config.schema, config.frame,
                                         config.num_classes)
    public = None if config.pretrain is None else public_images(config.pretrain, records.shape[1:], config.dataset)
    if public is not None and public.num_classes != data.num_classes:
        raise DataError(f"--pretrain {config.pretrain} declares {public.num_classes} classes, the private data "
                        f"{data.num_classes}: its classes must be the private data's.")
    config = config.with_recipe(records.shape[1:])
    resuming = run.resumes(config.to_json(records.shape[1:]))
    distribution = make_strategy(performance.strategy, performance.devices)
    train, held_out, split_record = split(len(records), config.holdout, config.holdout_order)
    held_out_records = (records[held_out], labels[held_out])
    records, labels = records[train], labels[train]
    # Deterministic kernels make a replayed step bit-identical to the lost one (see runs/checkpoints.py); they require a
    # global seed, which only the initial weights depend on (noise and batches come from the run's secrets).
    keras.utils.set_random_seed(new_seed() % 2**31 if config.seed is None else config.seed)
    tf.config.experimental.enable_op_determinism()
    with distribution.scope():
        network = family.build(data, config.seed, config.latent_dim, discriminator_steps=config.discriminator_steps,
                               **config.network_settings(records.shape[1:]))
    settings = privacy_settings(config, len(records), getattr(network, "anchors_marginals", False))
    make_optimizer(config.optimizer, settings, config.learning_rate, performance.engine, config.dp2_delay,
                   config.dp2_learning_rate)  # checks, before writing
    if not resuming:
        run.create(config.to_json(records.shape[1:]), split_record)
    secrets = run.secrets(config.insecure_noise_seed)
    with distribution.scope():
        network.compile(privacy=settings, optimizer=config.optimizer, learning_rate=config.learning_rate,
                        noise_key=secrets["noise_key"], engine=performance.engine, dp2_delay=config.dp2_delay,
                        dp2_learning_rate=config.dp2_learning_rate)
        network.optimizer._create_all_weights(network.trainable_variables)
    ledger = PrivacyLedger(settings.accountant)  # the one-shot releases, before the steps
    if settings.release_noise_multiplier is not None:
        release_marginals(network, records, labels, settings.release_noise_multiplier, secrets["noise_key"], ledger,
                          record_only=resuming)  # a resumed run has them in its checkpoint
    checkpoint = RunCheckpoint(run.checkpoints, network, performance.checkpoint_every)
    if resuming:
        checkpoint.restore_latest()  # with the public pretraining, if any, inside
    else:
        if public is not None:  # no private record, no privacy spent: before DP step 0
            if verbose:
                print(f"pretraining on {len(public.images)} public {config.pretrain} images, "
                      f"{config.pretrain_epochs} epochs, without DP")
            network.pretrain(public.images, public.labels, config.pretrain_epochs, learning_rate=config.learning_rate,
                             seed=0 if config.seed is None else config.seed, verbose=verbose)
        checkpoint.save()  # step 0: from here on, a run directory always has a checkpoint to resume from
    total = settings.steps
    if settings.target_epsilon is not None:
        total = min(total, accounting.max_steps_within(settings.target_epsilon, settings.noise_multiplier,
                                                       settings.sampling_probability, settings.delta,
                                                       settings.accountant, release=settings.release_noise_multiplier))
    if verbose:
        print(f"DP training {family.name} on {config.dataset} ({settings.dataset_size} records, "
              f"{distribution.num_replicas_in_sync} replica(s), {performance.engine} engine, {network.optimizer_name}):"
              f" noise_multiplier {settings.noise_multiplier:.4f}, {settings.clipping} clip {settings.l2_norm_clip}, "
              f"{settings.sampling} sampling q={settings.sampling_probability:.4f}, {total} steps, delta "
              f"{settings.delta:.0e}" + (f"; resuming at step {int(network.dp_steps.numpy())}" if resuming else ""))
        if not has_tf_privacy():
            print(f"TensorFlow Privacy is not installed: privacy.txt will not hold its statement and --engine "
                  f"vectorized is unavailable (add it: {TF_PRIVACY_INSTALL})")
    if config.insecure_noise_seed is not None:
        print(f"tfdpgen: warning: {INSECURE_NOISE_WARNING}", file=sys.stderr)
    fit_to(network, total,
           lambda: distributed_private_batches(records, labels, settings, distribution,
                                               secrets["sampling_seed"], network.dp_steps),
           [checkpoint], verbose)
    checkpoint.save()
    report = network.privacy_report(ledger)
    if config.pretrain is not None:
        report["public_pretraining"] = {"dataset": config.pretrain, "epochs": config.pretrain_epochs,
                                        "privacy_cost": "none: public data, no private record"}
    finish_run(run, network, family, config.dataset, report, privacy_statement(settings, report["steps"]), verbose,
               config.insecure_noise_seed is not None)
    closing = closing_accuracy_line(network, family, *held_out_records, config.dataset)
    if verbose and closing:
        print(closing)
    return run.path
