"""`train_run`: one training run from data to a served model, what `tfdpgen train` does, callable from Python."""
from tfdpgen.models.registry import DP_SGD
from tfdpgen.runs.config import RunConfig
from tfdpgen.runs.directory import RunDirectory
from tfdpgen.runs.dp_sgd import train_dp_sgd
from tfdpgen.runs.one_shot import train_one_shot


def train_run(model="vae", dataset=None, output=None, verbose=1, **settings) -> str:
    """Train a DP generator of family `model` into the run directory `output`, or resume the unfinished run there.
    Returns the run directory.

    `settings` are those of `tfdpgen train`, by their Python names: the privacy and training settings (epsilon, delta,
    noise_multiplier, l2_norm_clip, epochs, batch_size, sampling, accountant, optimizer, learning_rate, latent_dim,
    seed, clipping, target_quantile, dp2_delay, dp2_learning_rate, data_dir, schema, holdout, holdout_order,
    insecure_noise_seed, discriminator_steps, pretrain, pretrain_epochs), the performance settings (engine,
    strategy, devices, checkpoint_every) and the family's own (models.registry: components, bins, independence,
    max_cells for the marginal family; frequencies, fit_steps for DP-MERF). Every check runs before anything is
    written or trained; a setting of another family, or a DP-SGD setting given to a one-shot family, is refused.

    `holdout` of the records (a fraction, or a count; a random subset, or the last ones with holdout_order="tail")
    are held out: no network trains on them, and split.json records which they are, for `tfdpgen evaluate`.

    `seed` fixes the initial weights and the model's own randomness (a VAE's draws, a GAN's latents), none of which is
    DP noise. The DP noise key and the sampling seed always come from OS entropy and never reach a file that outlives
    training, unless `insecure_noise_seed` (tests and debugging) derives them; privacy.json then says the guarantee
    holds only while that seed is secret. Its value is never written (run.json records whether it was given).

    Tables: `dataset` may be a pandas DataFrame, with `schema` (a dict in the JSON schema's layout, a path, or a
    TableSchema); tfdpgen keeps no copy of it, so resuming or evaluating the run takes the same DataFrame again.
    """
    config = RunConfig.build(model, dataset, verbose=verbose, **settings)
    run = RunDirectory(output) if output else RunDirectory.default(config.family.name, config.dataset)
    if config.family.mechanism == DP_SGD:
        return train_dp_sgd(config, run)
    return train_one_shot(config, run)
