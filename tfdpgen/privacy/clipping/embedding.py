"""Embedding: example i's gradient row for id v is the sum of g_it over positions t holding v, so
||G_i||^2 = sum_{t,s} [id_it == id_is] (g_it . g_is)."""
import tensorflow as tf
import tf_keras as keras

LAYERS = (keras.layers.Embedding,)


def supports(layer, x):
    return type(layer) in LAYERS


def forward(layer, ids):
    ids = tf.cast(ids, tf.int32)
    z = tf.gather(layer.embeddings, ids)
    return z, z, ids


def flat(ids, g):
    batch = tf.shape(ids)[0]
    ids = tf.reshape(ids, [batch, -1])
    return ids, tf.reshape(g, [batch, tf.shape(ids)[1], g.shape[-1]])


def squared_norms(layer, ids, g):
    ids, g = flat(ids, g)
    same = tf.cast(tf.equal(ids[:, :, None], ids[:, None, :]), g.dtype)
    return tf.reduce_sum(same * tf.einsum("btd,bsd->bts", g, g), axis=[1, 2])


def gradients(layer, ids, g):
    """Per-example gradients [B, vocabulary, dim] (dense: only for weighted norms, in chunks)."""
    ids, g = flat(ids, g)
    return [tf.einsum("btv,btd->bvd", tf.one_hot(ids, layer.input_dim, dtype=g.dtype), g)]


def gradient_floats(layer, ids, g):
    return layer.embeddings.shape.num_elements() + ids.shape[1:].num_elements() * layer.input_dim


def keeps_gradients(layer, ids, g):
    return False
