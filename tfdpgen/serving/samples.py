"""`tfdpgen sample`: samples from a run's SavedModel (no server) or from a server, written as .npy, .csv or .png."""
import csv
import json
import os

import numpy as np


def draw_samples(export_dir=None, server=None, model_name=None, rest=False, num_samples=16, seed=0, labels=None) -> dict:
    """{output name: array}: "samples" for image families, one entry per column for tables; from the SavedModel in
    `export_dir` (no server) or from `server`."""
    if server is not None:
        from tfdpgen.serving.client import SamplerClient
        return SamplerClient(server, model_name, "rest" if rest else "grpc").sample(num_samples, seed, labels)
    import tensorflow as tf
    from tfdpgen.export.saved_model import DEFAULT_MAX_SAMPLES
    path = export_dir
    with open(os.path.join(path, "assets", "tfdpgen.json")) as f:
        metadata = json.load(f)
    largest = metadata.get("max_samples", DEFAULT_MAX_SAMPLES)
    count = num_samples if labels is None else len(labels)
    if not 1 <= count <= largest:
        raise ValueError(f"{'--labels' if labels is not None else '--num-samples'} asks for {count} samples: this model "
                         f"answers 1 to {largest} per request (draw more with several seeds).")
    if labels is not None:
        if metadata.get("num_classes") is None:
            raise ValueError("--labels needs a conditional model (one trained on labelled data); this one is not.")
        if not all(0 <= label < metadata["num_classes"] for label in labels):
            raise ValueError(f"--labels must be in [0, {metadata['num_classes']}), got {labels}.")
    signatures = tf.saved_model.load(path).signatures
    if labels is not None:
        outputs = signatures["sample_conditional"](labels=tf.constant(labels, tf.int32), seed=tf.constant(seed, tf.int64))
    else:
        outputs = signatures["serving_default"](num_samples=tf.constant(num_samples, tf.int32),
                                                seed=tf.constant(seed, tf.int64))
    samples = {name: tensor.numpy() for name, tensor in outputs.items()}
    schema = metadata.get("schema")
    if schema:  # the columns in the table's own order
        samples = {column["name"]: samples[column["name"]] for column in schema["columns"]}
    return samples


def as_text(values: np.ndarray):
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def check_out_path(out: str) -> str:
    """The extension of `out`, once it is known to be a file `write_samples` can write (checked before sampling)."""
    extension = os.path.splitext(out)[1].lower()
    if extension not in (".npy", ".csv", ".png"):
        raise ValueError(f"--out must end in .npy, .csv or .png, got {out!r}.")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {out}: the folder {folder} does not exist; create it or write elsewhere.")
    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a directory: give a file name ending in .npy, .csv or .png.")
    return extension


def write_samples(samples: dict, out: str = None) -> str:
    """Write `samples` to `out` by its extension; return a one-paragraph summary."""
    table = "samples" not in samples
    count = len(next(iter(samples.values())))
    if out is None:
        if not table:
            images = samples["samples"]
            return f"{count} samples of shape {list(images.shape[1:])}, values in [{images.min():.3f}, {images.max():.3f}]"
        rows = list(zip(*(as_text(v) for v in samples.values())))
        return "\n".join([",".join(samples)] + [",".join(map(str, row)) for row in rows[:10]])
    extension = check_out_path(out)
    if extension == ".npy":
        np.save(out, samples["samples"] if not table else
                np.array(list(zip(*(as_text(v) for v in samples.values()))), dtype=object), allow_pickle=table)
    elif extension == ".csv":
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            if table:
                writer.writerow(list(samples))
                writer.writerows(zip(*(as_text(v) for v in samples.values())))
            else:
                writer.writerows(samples["samples"].reshape(count, -1).tolist())
    elif extension == ".png":
        from tfdpgen.evaluation.plots import save_column_histograms, save_image_grid
        if table:
            save_column_histograms({k: np.asarray(as_text(v)) for k, v in samples.items()}, out)
        else:
            save_image_grid(samples["samples"], out)
    return f"wrote {count} samples to {out}"
