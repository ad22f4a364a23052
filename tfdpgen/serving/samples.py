"""`tfdpgen sample`: samples from a run's SavedModel (no server) or from a server, written as .npy, .csv or .png."""
import csv
import json
import os

import numpy as np


def draw_samples(run=None, server=None, model_name=None, rest=False, num_samples=16, seed=0, labels=None) -> dict:
    """{output name: array}: "samples" for image families, one entry per column for tables."""
    if server is not None:
        from tfdpgen.serving.client import SamplerClient
        return SamplerClient(server, model_name, "rest" if rest else "grpc").sample(num_samples, seed, labels)
    import tensorflow as tf
    path = os.path.join(run, "saved_model", "1")
    if not os.path.isdir(path):
        raise ValueError(f"{run} has no saved_model/1: is it a finished tfdpgen run?")
    signatures = tf.saved_model.load(path).signatures
    if labels is not None:
        if "sample_conditional" not in signatures:
            raise ValueError("--labels needs a conditional model (cgan, tabgan); this one is not.")
        outputs = signatures["sample_conditional"](labels=tf.constant(labels, tf.int32), seed=tf.constant(seed, tf.int64))
    else:
        outputs = signatures["serving_default"](num_samples=tf.constant(num_samples, tf.int32),
                                                seed=tf.constant(seed, tf.int64))
    samples = {name: tensor.numpy() for name, tensor in outputs.items()}
    with open(os.path.join(path, "assets", "tfdpgen.json")) as f:
        schema = json.load(f).get("schema")
    if schema:  # the columns in the table's own order
        samples = {column["name"]: samples[column["name"]] for column in schema["columns"]}
    return samples


def as_text(values: np.ndarray):
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


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
    extension = os.path.splitext(out)[1].lower()
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
    else:
        raise ValueError(f"--out must end in .npy, .csv or .png, got {out!r}.")
    return f"wrote {count} samples to {out}"
