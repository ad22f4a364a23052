"""Fast per-example clipping for the networks a generator runs through `Recorder.run`.

Forward: every supported layer (dense, conv, conv_transpose, embedding, layer_norm) is computed from its variables so
that its input and its pre-activation output z are kept. Backward, book-keeping style (Bu et al. 2023): one gradient of
the summed loss gives every z's per-example gradient g (examples are independent: no BatchNorm), the layer modules turn
(input, g) into per-example squared norms, and each layer's clipped sum is the gradient of z with respect to that
layer's variables with output gradient c * g, where c_i = min(1, C / ||grad_i||). Where a layer's per-example
gradients take no more memory than tensors the step holds anyway (each module's `keeps_gradients`: small kernels over
many positions), they are formed once and give both the norm and the clipped sum sum_i c_i G_i, with no second pass over the layer.

Any other layer with variables, and a layer called more than once, takes privacy.clipping.recompute (the layer run
again per example, in chunks of the batch). Variables the recorder never saw (used outside a recorded layer), and
layers with random draws inside, take per-example Jacobians of the loss (TF's pfor), with one warning naming them.
"""
import logging

import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.clipping import conv, conv_transpose, dense, embedding, layer_norm, recompute
from tfdpgen.privacy.clipping.norms import chunked_over_batch, sum_of_squares

LAYER_MODULES = (dense, conv, conv_transpose, embedding, layer_norm)
_warned = set()


def reuses_layers(network) -> bool:
    """True when a graph Sequential calls one layer more than once (its `layers` list each layer once)."""
    if not getattr(network, "_is_graph_network", False):
        return False
    calls = sum(len(nodes) for nodes in network._nodes_by_depth.values()) - len(network.inputs)
    return calls != len(network.layers)


class Call:
    """One recorded call of a layer with variables: its input, the tensor whose gradient the norms need (a module's
    pre-activation z, or the layer's output) and what its module keeps (`context`)."""

    def __init__(self, layer, module, inputs, output, context=None, training=False):
        self.layer, self.module, self.inputs, self.output = layer, module, inputs, output
        self.context, self.training = context, training

    def recompute(self, inputs):
        """The recorded output again, for other inputs (one example at a time, in privacy.clipping.recompute)."""
        if self.module is not None:
            return self.module.forward(self.layer, inputs)[0]
        return self.layer(inputs, training=self.training)


class Recorder:
    """Runs networks layer by layer, keeping what the norms need; outside a recording, runs them as Keras does."""

    def __init__(self):
        self.calls = []

    def run(self, network, inputs, training=False):
        if not isinstance(network, keras.Sequential) or reuses_layers(network):
            return self.call_layer(network, inputs, training)
        for layer in network.layers:
            inputs = self.run(layer, inputs, training)
        return inputs

    def call_layer(self, layer, inputs, training):
        inputs = tf.convert_to_tensor(inputs)
        for module in LAYER_MODULES:
            if module.supports(layer, inputs):
                z, outputs, context = module.forward(layer, inputs)
                self.calls.append(Call(layer, module, inputs, z, context, training))
                return outputs
        outputs = layer(inputs, training=training)
        if layer.trainable_variables and isinstance(outputs, tf.Tensor):
            self.calls.append(Call(layer, None, inputs, outputs, training=training))
        return outputs


class FastClipping:
    """Sums of per-example gradients, each clipped to a given norm in global L2 norm over `variables`.

    With `scales` (DP^2's preconditioner), example i's gradient is first multiplied coordinate-wise by them; norms are
    then weighted by their squares."""

    def clipped_sums(self, tape, per_example_loss, variables, recorder: Recorder, clip, scales=None):
        """(clipped sums aligned with `variables`, per-example norms before clipping)."""
        variables = list(variables)
        scale_of = None if scales is None else {id(v): s for v, s in zip(variables, scales)}

        def weights(layer):
            if scale_of is None:
                return None
            return [tf.square(scale_of[id(v)]) if id(v) in scale_of else tf.ones_like(v) for v in layer.trainable_variables]

        # Layers of networks trained otherwise (a GAN's generator) do not count; a layer called more than once has
        # cross terms between its calls, so it is run again per example, as are layers without a module.
        wanted = {id(v) for v in variables}
        by_layer = {}
        for call in recorder.calls:
            if any(id(v) in wanted for v in call.layer.trainable_variables):
                by_layer.setdefault(id(call.layer), []).append(call)
        single = [calls[0] for calls in by_layer.values() if len(calls) == 1 and calls[0].module is not None]
        rerun = [calls for calls in by_layer.values()
                 if (len(calls) > 1 or calls[0].module is None)
                 and all(recompute.repeatable(call.layer, call.training) for call in calls)]
        groups = [[call] for call in single] + rerun  # each layer's calls
        handled = {id(v) for calls in groups for v in calls[0].layer.trainable_variables}
        fallback = [v for v in variables if id(v) not in handled]
        self._warn([calls[0].layer for calls in rerun], fallback, recorder)

        outputs = [call.output for call in single] + [call.output for calls in rerun for call in calls]
        with tape:  # the persistent tape must see the sum it differentiates
            total = tf.reduce_sum(per_example_loss)
        output_grads = dict(zip(map(id, outputs), tape.gradient(total, outputs))) if outputs else {}
        squared = tf.zeros_like(per_example_loss)
        kept = {}
        for call in single:
            module, layer, context, g = call.module, call.layer, call.context, output_grads[id(call.output)]
            if module.keeps_gradients(layer, context, g):
                kept[id(call)] = grads = chunked_over_batch(
                    lambda c, gs: module.gradients(layer, c, gs), [context, g], module.gradient_floats(layer, context, g),
                    [v.shape for v in layer.trainable_variables])
                squared += sum_of_squares(grads, weights(layer))
            elif scale_of is None:
                squared += module.squared_norms(layer, context, g)
            else:
                special = getattr(module, "weighted_squared_norms", None)
                norms = special(layer, context, g, weights(layer)) if special else None
                if norms is None:
                    norms = chunked_over_batch(
                        lambda c, gs: sum_of_squares(module.gradients(layer, c, gs), weights(layer)), [context, g],
                        module.gradient_floats(layer, context, g))
                squared += norms
        for calls in rerun:
            squared += recompute.squared_norms(calls[0].layer, calls, [output_grads[id(c.output)] for c in calls],
                                               weights(calls[0].layer))
        jacobians = []
        if fallback:
            jacobians = tape.jacobian(per_example_loss, fallback, unconnected_gradients=tf.UnconnectedGradients.ZERO,
                                      experimental_use_pfor=True)
            if scale_of is not None:
                jacobians = [jacobian * scale_of[id(v)] for v, jacobian in zip(fallback, jacobians)]
            squared += sum_of_squares(jacobians)
        norms = tf.sqrt(squared)
        factors = tf.minimum(1.0, tf.cast(clip, norms.dtype) / tf.maximum(norms, 1e-12))

        def times_factors(g):
            return g * tf.reshape(factors, [-1] + [1] * (g.shape.rank - 1))

        sums = {}
        for calls in groups:
            layer = calls[0].layer
            if id(calls[0]) in kept:
                grads = [tf.tensordot(factors, grad, axes=[[0], [0]]) for grad in kept[id(calls[0])]]
            else:
                grads = tape.gradient([c.output for c in calls], layer.trainable_variables,
                                      output_gradients=[times_factors(output_grads[id(c.output)]) for c in calls],
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
            for v, grad in zip(layer.trainable_variables, grads):
                grad = tf.reshape(grad, v.shape)  # the shape chunking leaves unknown; also densifies IndexedSlices
                sums[id(v)] = grad if scale_of is None or id(v) not in scale_of else grad * scale_of[id(v)]
        for v, jacobian in zip(fallback, jacobians):
            sums[id(v)] = tf.tensordot(factors, jacobian, axes=[[0], [0]])
        return [sums[id(v)] for v in variables], norms

    @staticmethod
    def _warn(rerun_layers, fallback, recorder):
        logger = logging.getLogger("tfdpgen")
        names = sorted({layer.name for layer in rerun_layers} - _warned)
        if names:
            _warned.update(names)
            logger.info("per-example gradients of layers %s come from running each layer again per example (no norm "
                        "rule of their own, or called more than once)", ", ".join(names))
        seen = {id(v) for call in recorder.calls for v in call.layer.trainable_variables}
        names = sorted({v.name for v in fallback} - _warned)
        if names:
            _warned.update(names)
            logger.warning("per-example clipping falls back to Jacobians of the loss (slow, memory batch x batch x "
                           "activations) for variables %s: %s", ", ".join(names),
                           "a layer with random draws inside (dropout) cannot be run again per example"
                           if any(id(v) in seen for v in fallback) else "they are used outside a recorded layer")

