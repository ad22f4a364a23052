"""Layers without a norm rule of their own, and layers called more than once in a loss: each example's gradient is
found by running the layer again on that example alone, from the inputs and output gradients the forward pass
recorded, vectorized over a chunk of the batch (pfor, as TF Privacy's vectorized optimizer does for a whole model).

Example i's gradient is sum_k J_k(x_ik)^T g_ik over the layer's calls k (g_ik: the gradient of the summed loss with
respect to call k's output, which only example i's loss reaches), so only the layer, never the network, is run per
example, and memory stays at a chunk of examples times the layer's parameters. The clipped sum is then one weighted
backward pass, as for every other layer.
"""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.clipping.norms import chunked_over_batch, per_example_size

STOCHASTIC = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
              keras.layers.AlphaDropout)


def repeatable(layer, training) -> bool:
    """Whether running the layer again gives the output the loss saw (no random draws inside): a norm from a
    different dropout mask would clip the wrong gradient."""
    if not training:
        return True
    return not any(isinstance(sublayer, STOCHASTIC) for sublayer in layer._flatten_layers())


def squared_norms(layer, calls, output_grads, weights=None):
    """||sum_k J_k(x_ik)^T g_ik||^2 (weighted by `weights`, one per trainable variable, when given) for each example
    i; `calls` are the layer's recorded calls (each with `inputs` and `recompute`), `output_grads` their g."""
    variables = layer.trainable_variables
    weights = weights or [None] * len(variables)
    count = len(calls)

    def one_example(tensors):
        with tf.GradientTape() as tape:
            outputs = [call.recompute(x[None]) for call, x in zip(calls, tensors[:count])]
        grads = tape.gradient(outputs, variables, output_gradients=[g[None] for g in tensors[count:]],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return tf.add_n([tf.reduce_sum(tf.square(tf.convert_to_tensor(grad)) * (1.0 if w is None else w))
                         for grad, w in zip(grads, weights)])

    tensors = [call.inputs for call in calls] + list(output_grads)
    floats = sum(v.shape.num_elements() for v in variables) + sum(per_example_size(t) for t in tensors)
    return chunked_over_batch(lambda *chunk: tf.vectorized_map(one_example, list(chunk)), tensors, floats)
