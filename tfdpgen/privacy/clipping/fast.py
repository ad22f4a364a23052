"""Fast per-example clipping for the networks a generator runs through `Recorder.run`.

Forward: every supported layer (dense, conv, conv_transpose, embedding, layer_norm) is computed from its variables so
that its input and its pre-activation output z are kept. Backward, book-keeping style (Bu et al. 2023): one gradient of
the summed loss gives every z's per-example gradient g (examples are independent: no BatchNorm), the layer modules turn
(input, g) into per-example squared norms, and each layer's clipped sum is the gradient of z with respect to that
layer's variables with output gradient c * g, where c_i = min(1, C / ||grad_i||). Nothing of size batch x parameters is
formed for supported layers. Other layers with variables fall back to per-example Jacobians (TF's vectorized pfor),
with one warning naming them.
"""
import logging

import tensorflow as tf

from tfdpgen.privacy.clipping import conv, conv_transpose, dense, embedding, layer_norm

LAYER_MODULES = (dense, conv, conv_transpose, embedding, layer_norm)
_warned = set()


def reuses_layers(network) -> bool:
    """True when a graph Sequential calls one layer more than once (its `layers` list each layer once)."""
    if not getattr(network, "_is_graph_network", False):
        return False
    calls = sum(len(nodes) for nodes in network._nodes_by_depth.values()) - len(network.inputs)
    return calls != len(network.layers)


class Recorder:
    """Runs networks layer by layer, keeping what the norms need; outside a recording, runs them as Keras does."""

    def __init__(self):
        self.entries = []  # (module, layer, context, z)
        self.fallback_layers = []

    def run(self, network, inputs, training=False):
        if not isinstance(network, tf.keras.Sequential) or reuses_layers(network):
            return self.call_layer(network, inputs, training)
        for layer in network.layers:
            inputs = self.run(layer, inputs, training)
        return inputs

    def call_layer(self, layer, inputs, training):
        inputs = tf.convert_to_tensor(inputs)
        for module in LAYER_MODULES:
            if module.supports(layer, inputs):
                z, outputs, context = module.forward(layer, inputs)
                self.entries.append((module, layer, context, z))
                return outputs
        if layer.trainable_variables:
            self.fallback_layers.append(layer)
        return layer(inputs, training=training)


class FastClipping:
    """Sums of per-example gradients, each clipped to a given norm in global L2 norm over `variables`.

    With `scales` (DP^2's preconditioner), example i's gradient is first multiplied coordinate-wise by them; the
    layer modules then compute weighted norms (those without `weighted_squared_norms` take the Jacobian path).
    """

    def clipped_sums(self, tape, per_example_loss, variables, recorder: Recorder, clip, scales=None):
        """(clipped sums aligned with `variables`, per-example norms before clipping)."""
        variables = list(variables)
        scale_of = None if scales is None else {id(v): s for v, s in zip(variables, scales)}

        def weights(layer):
            return [tf.square(scale_of[id(v)]) if id(v) in scale_of else tf.ones_like(v) for v in layer.trainable_variables]

        # A layer called more than once has cross terms between its calls: its variables take the Jacobian path, as
        # do layers whose module has no weighted norm when there are scales.
        wanted = {id(v) for v in variables}  # layers of networks trained otherwise (a GAN's generator) do not count
        recorded = [entry for entry in recorder.entries
                    if any(id(v) in wanted for v in entry[1].trainable_variables)]
        calls = {}
        for entry in recorded:
            calls[id(entry[1])] = calls.get(id(entry[1]), 0) + 1
        entries, rest = [], []
        for entry in recorded:
            usable = calls[id(entry[1])] == 1 and (scale_of is None or hasattr(entry[0], "weighted_squared_norms"))
            (entries if usable else rest).append(entry)
        recorder.fallback_layers += [entry[1] for entry in rest]
        handled = {id(v) for _, layer, _, _ in entries for v in layer.trainable_variables}
        fallback = [v for v in variables if id(v) not in handled]
        self._warn(recorder, fallback)
        zs = [z for *_, z in entries]
        with tape:  # the persistent tape must see the sum it differentiates
            total = tf.reduce_sum(per_example_loss)
        output_grads = tape.gradient(total, zs) if zs else []
        squared = tf.zeros_like(per_example_loss)
        for (module, layer, context, _), g in zip(entries, output_grads):
            squared += (module.squared_norms(layer, context, g) if scale_of is None else
                        module.weighted_squared_norms(layer, context, g, weights(layer)))
        jacobians = []
        if fallback:
            jacobians = tape.jacobian(per_example_loss, fallback, unconnected_gradients=tf.UnconnectedGradients.ZERO,
                                      experimental_use_pfor=True)
            if scale_of is not None:
                jacobians = [jacobian * scale_of[id(v)] for v, jacobian in zip(fallback, jacobians)]
            for jacobian in jacobians:
                squared += tf.reduce_sum(tf.reshape(tf.square(jacobian), [tf.shape(jacobian)[0], -1]), axis=1)
        norms = tf.sqrt(squared)
        scale = tf.minimum(1.0, tf.cast(clip, norms.dtype) / tf.maximum(norms, 1e-12))
        sums = {}
        for (_, layer, _, z), g in zip(entries, output_grads):
            weighted = g * tf.reshape(scale, [-1] + [1] * (g.shape.rank - 1))
            for v, grad in zip(layer.trainable_variables, tape.gradient(z, layer.trainable_variables,
                                                                        output_gradients=weighted)):
                grad = tf.convert_to_tensor(grad)
                sums[id(v)] = grad if scale_of is None or id(v) not in scale_of else grad * scale_of[id(v)]
        for v, jacobian in zip(fallback, jacobians):
            sums[id(v)] = tf.tensordot(scale, jacobian, axes=[[0], [0]])
        return [sums[id(v)] for v in variables], norms

    @staticmethod
    def _warn(recorder, fallback):
        names = sorted({layer.name for layer in recorder.fallback_layers} - _warned)
        if fallback and names:
            _warned.update(names)
            logging.getLogger("tfdpgen").warning(
                "per-example clipping falls back to Jacobians (slower, memory batch x parameters) for layers %s",
                ", ".join(names))
