"""A finished run read back: its generator rebuilt from the export's config and restored from its last checkpoint, and
its records split again as split.json says."""
import tensorflow as tf

from tfdpgen.models.registry import family as find_family
from tfdpgen.runs.directory import RunDirectory, RunDirectoryError
from tfdpgen.runs.split import load_records, split_indices


def legacy_config(metadata: dict) -> dict:
    """The network config of an export written before exports carried one (format 1): rebuilt from the keys each
    family's metadata held then."""
    family = metadata["family"]
    if family == "marginal":
        return {"schema": metadata["schema"], "components": metadata["components"], "bins": metadata["bins"]}
    config = {"latent_dim": metadata["latent_dim"]}
    if "schema" in metadata:
        return {**config, "schema": metadata["schema"]}
    config["image_shape"] = metadata["image_shape"]
    if find_family(family).conditional:
        config["num_classes"] = metadata["num_classes"]
    if family == "diffusion":  # runs from before 2x2 patches have none: patch 1
        config.pop("latent_dim")
        config.update({key: metadata[key] for key in ("multiplicity", "sample_steps", "width", "guidance")
                       if key in metadata}, patch=metadata.get("patch", 1))
    if family == "merf":
        config.update({key: metadata[key] for key in ("frequencies", "bandwidth", "feature_seed")})
    if family == "sinkhorn":  # runs from before the wider generator have none: width 1
        config["generator_width"] = metadata.get("generator_width", 1)
    return config


def load_trained(run_dir: str):
    """The generator of the finished run in `run_dir` and its export's metadata: (model, metadata)."""
    run = RunDirectory(run_dir)
    run.finished_report()
    metadata = run.export_metadata()
    config = metadata["config"] if "config" in metadata else legacy_config(metadata)
    network = find_family(metadata["family"]).rebuild(config)
    latest = tf.train.latest_checkpoint(run.checkpoints)
    if latest is None:
        raise RunDirectoryError(f"{run_dir}/checkpoints holds no checkpoint to export from.")
    tf.train.Checkpoint(model=network).read(latest).expect_partial()
    return network, metadata


def load_split(run_dir: str, frame=None):
    """(train records, train labels, held-out records, held-out labels, data, split) of a run: its data reloaded
    and split as split.json says (a run that trained on a DataFrame needs it again as `frame`)."""
    run = RunDirectory(run_dir)
    config, split = run.config(), run.split()
    records, labels, data = load_records(find_family(config["model"]), config["dataset"], config["data_dir"],
                                         config.get("schema"), frame, config.get("num_classes"))
    if len(records) != split["records"]:
        raise RunDirectoryError(f"the data of {run_dir} now has {len(records)} records, the run had "
                                f"{split['records']}: the held-out part cannot be recovered.")
    train, held_out = split_indices(split["records"], split["held_out_count"], split["order"])
    return records[train], labels[train], records[held_out], labels[held_out], data, split

