"""SavedModel export of a generator: `serving_default(num_samples: int32, seed: int64) -> {"samples": float32}`;
conditional families add `sample_conditional(labels: int32 [n], seed: int64)`; tabular families return one output
per column instead of "samples". `serving_default` of a conditional family draws labels uniformly, except for a model
whose `samples_joint` is true (the marginal family), which draws them from its own joint distribution.

Only the generator networks' variables are saved; sampling uses stateless random ops, so a seed reproduces its
samples. The SavedModel loads with `tf.saved_model.load` alone: no tfdpgen, no Keras.
"""
import json
import os

import tensorflow as tf

DEFAULT_MAX_SAMPLES = 10_000


class ExportError(ValueError):
    """The export cannot be written as asked; nothing was written."""


def export_sampler(model, export_dir, max_samples: int = DEFAULT_MAX_SAMPLES, metadata: dict = None) -> str:
    """Write `model`'s generator to `export_dir` (which must not exist yet, or be empty) and return the path."""
    if os.path.exists(export_dir) and os.listdir(export_dir):
        raise ExportError(f"{export_dir} already holds files; export to a new directory (nothing was overwritten).")
    module = tf.Module()
    module.networks = list(model.generator_networks)
    latent_dim, num_classes = model.latent_dim, model.num_classes

    def check_size(num_samples):
        """num_samples, once it is known to be in [1, max_samples] (the checks run before anything uses it)."""
        checks = [tf.debugging.assert_greater_equal(num_samples, 1, message="num_samples must be at least 1"),
                  tf.debugging.assert_less_equal(num_samples, max_samples,
                                                 message=f"num_samples must be at most max_samples={max_samples}")]
        with tf.control_dependencies(checks):
            return tf.identity(num_samples)

    def draw(num_samples, seed, labels=None):
        z = tf.random.stateless_normal(tf.stack([num_samples, latent_dim]), seed=tf.stack([seed, tf.zeros_like(seed)]))
        samples = model.generate(z, labels)
        return samples if isinstance(samples, dict) else {"samples": tf.cast(samples, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                  tf.TensorSpec([], tf.int64, name="seed")])
    def sample(num_samples, seed):
        num_samples = check_size(num_samples)
        labels = None
        if num_classes is not None and not getattr(model, "samples_joint", False):  # labels uniformly at random
            labels = tf.random.stateless_uniform(tf.stack([num_samples]), seed=tf.stack([seed, tf.ones_like(seed)]),
                                                 maxval=num_classes, dtype=tf.int32)
        return draw(num_samples, seed, labels)

    signatures = {"serving_default": sample}
    module.sample = sample
    if num_classes is not None:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="labels"),
                                      tf.TensorSpec([], tf.int64, name="seed")])
        def sample_conditional(labels, seed):
            checks = [check_size(tf.size(labels)),
                      tf.debugging.assert_non_negative(labels, message="labels must be in [0, num_classes)"),
                      tf.debugging.assert_less(labels, num_classes,
                                               message=f"labels must be below num_classes={num_classes}")]
            with tf.control_dependencies(checks):
                labels = tf.identity(labels)
            return draw(tf.size(labels), seed, labels)

        module.sample_conditional = sample_conditional
        signatures["sample_conditional"] = sample_conditional
    tf.saved_model.save(module, export_dir, signatures=signatures)
    if metadata is not None:
        os.makedirs(os.path.join(export_dir, "assets"), exist_ok=True)
        with open(os.path.join(export_dir, "assets", "tfdpgen.json"), "w") as f:
            json.dump(metadata, f, indent=2)
    return export_dir
