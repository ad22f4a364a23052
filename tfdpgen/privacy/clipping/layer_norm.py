"""LayerNormalization over the last axis: per-example gradients sum_t x_hat_t * g_t (gamma) and sum_t g_t (beta)."""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.clipping.norms import sum_of_squares, sum_over_positions

LAYERS = (keras.layers.LayerNormalization,)


def supports(layer, x):
    return type(layer) in LAYERS and [a % x.shape.rank for a in layer.axis] == [x.shape.rank - 1]


def forward(layer, x):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    normalized = (x - mean) * tf.math.rsqrt(variance + layer.epsilon)
    z = normalized
    if layer.scale:
        z = z * layer.gamma
    if layer.center:
        z = z + layer.beta
    return z, z, normalized


def gradients(layer, normalized, g):
    """Per-example gradients [B, d] of gamma and beta, in the layer's variable order."""
    return ([sum_over_positions(normalized * g)] if layer.scale else []) + ([sum_over_positions(g)] if layer.center else [])


def squared_norms(layer, normalized, g):
    return sum_of_squares(gradients(layer, normalized, g))


def gradient_floats(layer, normalized, g):
    return 2 * normalized.shape[-1]


def keeps_gradients(layer, normalized, g):
    return True
