"""Image metrics: train-on-synthetic-test-on-real accuracy, and Fréchet distance and precision/recall in the feature
space of a small classifier.

The feature classifier is not Inception (its weights cannot be downloaded here), so the Fréchet distance is not the
papers' FID: it compares Gaussian fits of the penultimate-layer features of a small CNN trained on real images that
no generator saw, and only figures computed with the same classifier compare.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

L = keras.layers


def small_cnn(image_shape, num_classes: int, seed: int = 0) -> keras.Model:
    """The fixed classifier of every image evaluation (conv 32 and 64, each pooled on images of 16 pixels or more,
    dense 128 'features', softmax). Spatial features are kept to the dense layer (global average pooling there capped
    it near 0.85 on 8,000 real MNIST images, below what good synthetic data can show)."""
    keras.utils.set_random_seed(seed)
    inputs = L.Input(image_shape)
    h = L.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    if image_shape[0] >= 16:
        h = L.MaxPooling2D()(h)
    h = L.Conv2D(64, 3, padding="same", activation="relu")(h)
    if image_shape[0] >= 16:
        h = L.MaxPooling2D()(h)
    features = L.Dense(128, activation="relu", name="features")(L.Flatten()(h))
    outputs = L.Dense(num_classes)(features)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.legacy.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def batches(images, labels, shuffle_seed: int = None, batch_size: int = 64) -> tf.data.Dataset:
    """Batches of (images, labels), reshuffled each epoch from `shuffle_seed` if given. A data set, not arrays, goes to
    `fit` here: Keras' own pipeline for arrays is a parallel map that TensorFlow rewrites when op
    determinism is on (a DP-SGD run turns it on), logging "NodeDef mentions attribute use_unbounded_threadpool" (an
    attribute the rewritten op lacks)."""
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        data = data.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size)


def train_classifier(images, labels, num_classes: int, epochs: int = 20, seed: int = 0, selection_share: float = 0.0):
    """The fixed CNN trained on `images`. With `selection_share`, that share of them (a random, class-mixed part) is
    kept out of training and the weights of the epoch that scores best on it are the ones returned: the epochs are
    chosen on the training images' own distribution, never on the images the classifier is finally scored on
    (DPImageBench: choosing them on the real test set overstates synthetic data's worth and is not DP)."""
    model = small_cnn(images.shape[1:], num_classes, seed)
    if not selection_share:
        model.fit(batches(images, labels, seed), epochs=epochs, verbose=0)
        return model
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(round(len(images) * selection_share))
    chosen, fitted = order[:cut], order[cut:]
    # the held-back loss, not its accuracy: on clean synthetic data the accuracy reaches its maximum early and ties,
    # which would keep an undertrained epoch
    best = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=epochs, restore_best_weights=True)
    model.fit(batches(images[fitted], labels[fitted], seed), epochs=epochs, verbose=0,
              validation_data=batches(images[chosen], labels[chosen]), callbacks=[best])
    model.selected_epoch = best.best_epoch + 1
    return model


def outputs(model, images, batch_size: int = 256) -> np.ndarray:
    """`model` on `images`, a batch at a time, eagerly: `predict` traces a function for each new model, and an
    evaluation makes several (TensorFlow then warns of "excessive retracing")."""
    return np.concatenate([model(images[start:start + batch_size], training=False).numpy()
                           for start in range(0, len(images), batch_size)])


def accuracy(model, images, labels) -> float:
    return float(np.mean(np.argmax(outputs(model, images), -1) == labels))


def tstr_accuracy(train_images, train_labels, test_images, test_labels, num_classes, epochs=20, seed=0,
                  selection_share=0.1) -> float:
    """Train the fixed CNN on (synthetic) labelled images, its epoch (of at most `epochs`) chosen on `selection_share`
    of them, and score it once on the real ones."""
    classifier = train_classifier(train_images, train_labels, num_classes, epochs, seed, selection_share)
    return accuracy(classifier, test_images, test_labels)


def features(classifier, images) -> np.ndarray:
    extractor = keras.Model(classifier.input, classifier.get_layer("features").output)
    return outputs(extractor, images).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussian fits of two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr (S_a S_b)^(1/2) is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a symmetric
    # matrix: symmetric eigensolvers do not fail where scipy.linalg.sqrtm of the non-symmetric product did (an internal
    # error on a diffusion model's samples, whose features have dead units and so singular covariances).
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sum(np.sqrt(np.clip(middle, 0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3):
    """Improved precision and recall (Kynkäänniemi et al. 2019): the share of fake samples inside the real data's
    k-nearest-neighbour balls, and of real samples inside the fake data's."""
    def radii(x):
        distances = pairwise(x, x)
        return np.sort(distances, axis=1)[:, k]  # index 0 is the point itself

    def inside(points, support, support_radii):
        return float(np.mean(np.any(pairwise(points, support) <= support_radii[None, :], axis=1)))

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)]."""
    squared = np.sum(a ** 2, 1)[:, None] + np.sum(b ** 2, 1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))
