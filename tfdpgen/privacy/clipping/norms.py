"""Per-example squared norms of sums of outer products, without forming per-example gradients when that is cheaper,
and the batch chunking that bounds what they materialize.

A layer whose weight gradient for example i is G_i = sum_t a_it g_it^T (t over positions: sequence steps, image
patches) has ||G_i||_F^2 = sum_{t,s} (a_it . a_is)(g_it . g_is) (the "ghost norm", cost T^2 (p + q)), or can form
G_i directly (cost T p q). `outer_sum_squared_norms` takes whichever is cheaper (mixed ghost clipping, Bu et al. 2022).
"""
import tensorflow as tf

CHUNK_FLOATS = 3 << 20  # values (12 MB in float32) one chunk of examples may materialize at once


def outer_sum_squared_norms(a, g):
    """||sum_t a[i, t] g[i, t]^T||_F^2 for a [B, T, p] and g [B, T, q]; returns [B]."""
    positions, p, q = a.shape[1], a.shape[2], g.shape[2]
    if positions is None or positions * (p + q) <= p * q:
        a_gram = tf.einsum("btp,bsp->bts", a, a)
        g_gram = tf.einsum("btq,bsq->bts", g, g)
        return tf.reduce_sum(a_gram * g_gram, axis=[1, 2])
    return tf.reduce_sum(tf.square(tf.einsum("btp,btq->bpq", a, g)), axis=[1, 2])


def outer_sum_floats(a_shape, g_shape):
    """Values per example that `outer_sum_squared_norms` materializes besides its inputs."""
    positions, p, q = a_shape[-2], a_shape[-1], g_shape[-1]
    return min(positions * positions, p * q) if positions is not None else p * q


def chunked_over_batch(fn, tensors, floats_per_example: int, example_shapes=None):
    """fn(*tensors) -> [B] values (or, given `example_shapes`, a list of tensors [B, *shape]), in the dtype of the last
    of `tensors`, computed on chunks of examples small enough that what fn materializes (`floats_per_example` values
    each) stays under CHUNK_FLOATS, whatever the batch size. A batch that fits in one chunk runs fn once; a larger one
    is cut into slices taken one after the other (one chunk's temporaries alive at a time, no copy of the inputs).
    Every slice has the chunk's size (the last one starts early and overlaps), so shapes stay static under XLA."""
    chunk = max(1, CHUNK_FLOATS // max(1, int(floats_per_example)))
    static_batch = tensors[0].shape[0]
    if static_batch is not None and static_batch <= chunk:
        return fn(*tensors)

    def in_chunks():
        batch = tf.shape(tensors[0])[0]
        count = (batch + chunk - 1) // chunk

        def one_chunk(index):
            start = tf.minimum(index * chunk, batch - chunk)
            parts = [tf.slice(t, [start] + [0] * (t.shape.rank - 1), [chunk] + [-1] * (t.shape.rank - 1)) for t in tensors]
            return tf.nest.flatten(fn(*parts))  # tf.slice: a static size, which XLA's dynamic slices need

        shapes = [()] if example_shapes is None else example_shapes  # static shapes: XLA needs them
        specs = [tf.TensorSpec([chunk, *shape], tensors[-1].dtype) for shape in shapes]
        results = tf.map_fn(one_chunk, tf.range(count), parallel_iterations=1, fn_output_signature=specs)
        overlap = count * chunk - batch  # rows the last chunk shares with the one before
        joined = [tf.concat([tf.reshape(r[:-1], [-1, *shape]), r[-1][overlap:]], 0) for r, shape in zip(results, shapes)]
        return joined[0] if example_shapes is None else joined

    if static_batch is not None:
        return in_chunks()
    return tf.cond(tf.shape(tensors[0])[0] <= chunk, lambda: fn(*tensors), in_chunks)


def unfolding(kernel, channels) -> str:
    """How `unfold` cuts patches of kh*kw*C values, the fastest way measured on CPU for that size: a full one-hot
    convolution for small patches, a depthwise one (its cost grows with the patch size, not its square) for middle
    sizes, tf.image.extract_patches for large ones."""
    size = kernel[0] * kernel[1] * channels
    return "one_hot" if size <= 64 else "depthwise" if size <= 576 else "extract"


def unfold(x, kernel, strides, rates, padding):
    """Patches [B, H', W', kh*kw*C] of a [B, H, W, C] tensor, as a convolution with one-hot kernels sees them; a
    [B, K, H, W, C] tensor (K images of one example, as a diffusion model's noise draws) gives [B, K, H', W', ...].

    The values of a patch come in the kernel's own (kh, kw, C) order, except from a depthwise unfolding: (C, kh, kw),
    which `to_kernel_order` puts right on the (much smaller) products. Norms do not depend on the order."""
    if x.shape.rank > 4:
        patches = unfold(tf.reshape(x, [-1, *x.shape[-3:]]), kernel, strides, rates, padding)
        unfolded = tf.reshape(patches, tf.concat([tf.shape(x)[:-3], tf.shape(patches)[1:]], 0))
        unfolded.set_shape(x.shape[:-3].concatenate(patches.shape[1:]))
        return unfolded
    channels = x.shape[-1]
    method = unfolding(kernel, channels)
    if method == "one_hot":
        one_hot = tf.reshape(tf.eye(kernel[0] * kernel[1] * channels, dtype=x.dtype), (*kernel, channels, -1))
        return tf.nn.conv2d(x, one_hot, strides=strides, padding=padding, dilations=rates)
    if method == "depthwise":
        one_hot = tf.tile(tf.reshape(tf.eye(kernel[0] * kernel[1], dtype=x.dtype), (*kernel, 1, -1)),
                          [1, 1, channels, 1])
        return tf.nn.depthwise_conv2d(x, one_hot, strides=[1, *strides, 1], padding=padding, dilations=rates)
    return tf.image.extract_patches(x, [1, *kernel, 1], [1, *strides, 1], [1, *rates, 1], padding)


def to_kernel_order(products, kernel, channels):
    """[B, kh*kw*C, q] products of `unfold`'s patches with anything -> [B, kh, kw, C, q], the kernel's layout."""
    batch, q = tf.shape(products)[0], products.shape[-1]
    if unfolding(kernel, channels) == "depthwise":  # (C, kh, kw) order
        products = tf.transpose(tf.reshape(products, [batch, channels, kernel[0] * kernel[1], q]), [0, 2, 1, 3])
    return tf.reshape(products, [batch, *kernel, channels, q])


def as_positions(tensor):
    """[B, ..., d] -> [B, T, d] with T the product of the middle axes (1 when there are none)."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.stack([shape[0], -1, shape[-1]])) if tensor.shape.rank != 3 else tensor


def per_example_size(tensor) -> int:
    """Values per example of a [B, ...] tensor with static inner axes."""
    return tensor.shape[1:].num_elements()


def sum_over_positions(g):
    """sum_t g[i, t] for g [B, ..., q] (a bias's per-example gradient); [B, q]."""
    axes = list(range(1, g.shape.rank - 1))
    return tf.reduce_sum(g, axis=axes) if axes else g


def sum_of_squares(grads, weights=None):
    """Per-example sum of (weighted) squares of per-example gradients [B, ...]; returns [B]."""
    weights = weights or [None] * len(grads)
    return tf.add_n([tf.reduce_sum(tf.reshape(tf.square(grad) * (1.0 if w is None else w), [tf.shape(grad)[0], -1]),
                                   axis=1) for grad, w in zip(grads, weights)])


def sum_over_positions_squared(g):
    """||sum_t g[i, t]||^2 for g [B, ..., q]; returns [B]."""
    return tf.reduce_sum(tf.square(sum_over_positions(g)), axis=-1)
