"""LayerNormalization over the last axis: per-example gradients sum_t x_hat_t * g_t (gamma) and sum_t g_t (beta)."""
import tensorflow as tf

from tfdpgen.privacy.clipping.norms import sum_over_positions_squared

LAYERS = (tf.keras.layers.LayerNormalization,)


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


def squared_norms(layer, normalized, g):
    norms = tf.zeros(tf.shape(g)[:1], g.dtype)
    if layer.scale:
        norms += sum_over_positions_squared(normalized * g)
    if layer.center:
        norms += sum_over_positions_squared(g)
    return norms


def weighted_squared_norms(layer, normalized, g, weights):
    norms = tf.zeros(tf.shape(g)[:1], g.dtype)
    weights = list(weights)
    if layer.scale:
        norms += sum_over_positions_squared(normalized * g, weights.pop(0))
    if layer.center:
        norms += sum_over_positions_squared(g, weights.pop(0))
    return norms
