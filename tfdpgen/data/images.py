"""Image data sets as float32 arrays in [0, 1] of shape [N, H, W, C], with their labels.

`digits` (scikit-learn's bundled 8x8 handwritten digits) works offline; `mnist` and `fashion_mnist` come from
TensorFlow Datasets when online, or from local IDX files (`data_dir`, e.g. ../shared/data/mnist).
"""
import dataclasses
import gzip
import os

import numpy as np

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
# The label set is part of a data set's declaration, never read from its labels: one record of a class that no other
# record holds would otherwise change the shape of everything released (the class count a conditional model takes).
DECLARED_CLASSES = 10  # each bundled set, and a folder of IDX files unless --num-classes says otherwise


class DataError(ValueError):
    """Data that cannot be trained on as given; the message says what to do."""


@dataclasses.dataclass
class ImageData:
    images: np.ndarray  # float32 [N, H, W, C] in [0, 1]
    labels: np.ndarray  # int32 [N]
    name: str
    num_classes: int = 10


def load_images(name: str = "digits", data_dir=None, num_classes: int = None) -> ImageData:
    """Load a named image data set; `data_dir` holds IDX files (*-images-idx3-ubyte[.gz]) and skips TFDS.
    `num_classes` declares the label set [0, num_classes) (default DECLARED_CLASSES); other labels are refused."""
    if data_dir is not None:
        images, labels = read_idx_dir(data_dir)
    elif name == "digits":
        from sklearn.datasets import load_digits
        digits = load_digits()
        images, labels = digits.images[..., None] / 16.0, digits.target
    elif name in ("mnist", "fashion_mnist", "cifar10"):
        images, labels = _load_tfds(name)
    else:
        raise DataError(f"unknown dataset {name!r}: choose one of {DATASETS}, or give --data-dir with IDX files.")
    num_classes = DECLARED_CLASSES if num_classes is None else num_classes
    validate_labels(labels, num_classes)
    data = ImageData(np.asarray(images, np.float32), np.asarray(labels, np.int32), name, num_classes)
    validate_images(data.images)
    return data


def validate_labels(labels, num_classes: int) -> None:
    """One clear error for labels outside the declared set [0, num_classes)."""
    labels = np.asarray(labels)
    outside = int(np.sum((labels < 0) | (labels >= num_classes)))
    if outside:
        raise DataError(f"{outside} labels lie outside the declared classes 0..{num_classes - 1}: give "
                        "--num-classes with the number of classes your data set declares (not the largest label "
                        "found: the label set is public schema), or remove those records.")


def _load_tfds(name):
    import tensorflow_datasets as tfds
    try:
        ds = tfds.load(name, split="train", as_supervised=True, batch_size=-1)
    except Exception as error:
        raise DataError(f"could not load {name!r} through TensorFlow Datasets ({type(error).__name__}: {error}). "
                        "Offline? Give --data-dir with the IDX files (train-images-idx3-ubyte.gz, "
                        "train-labels-idx1-ubyte.gz), or use --dataset digits.") from error
    images, labels = tfds.as_numpy(ds)
    return images / 255.0, labels


def read_idx(path) -> np.ndarray:
    """Read one IDX file (MNIST's format), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:  # EOFError: a gzip file cut short
        raise DataError(f"{path} cannot be read ({type(error).__name__}: {error}): the file is damaged or "
                        "truncated; download it again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, file holds {data.size} values.")
    return data.reshape(shape)


def read_idx_dir(data_dir):
    """Images and labels from a directory of IDX files; prefers the `train-` files over `t10k-` ones."""
    if not os.path.isdir(data_dir):
        raise DataError(f"--data-dir {data_dir} is not a directory: give the folder holding the IDX files.")
    names = sorted(os.listdir(data_dir))
    for prefix in ("train", "t10k"):
        images = [n for n in names if n.startswith(prefix) and "images-idx3-ubyte" in n]
        labels = [n for n in names if n.startswith(prefix) and "labels-idx1-ubyte" in n]
        if images and labels:
            x = read_idx(os.path.join(data_dir, images[0]))
            y = read_idx(os.path.join(data_dir, labels[0]))
            if len(x) != len(y):
                raise DataError(f"{images[0]} has {len(x)} images but {labels[0]} has {len(y)} labels.")
            return x[..., None] / 255.0, y
    raise DataError(f"no IDX image and label files in {data_dir} (expected e.g. train-images-idx3-ubyte.gz and "
                    "train-labels-idx1-ubyte.gz, or the t10k- pair).")


def validate_images(images: np.ndarray, expected_shape=None) -> None:
    """One clear error for empty, NaN-holding, out-of-range or wrongly shaped image arrays."""
    if images.ndim != 4:
        raise DataError(f"images must have shape [N, height, width, channels], got {images.shape}.")
    if len(images) == 0:
        raise DataError("the data set is empty: nothing to train on.")
    if not np.all(np.isfinite(images)):
        bad = int(np.sum(~np.isfinite(images).reshape(len(images), -1).all(axis=1)))
        raise DataError(f"{bad} images hold NaN or infinite values: remove or repair them before training.")
    if images.min() < 0 or images.max() > 1:
        raise DataError(f"pixel values must be scaled to [0, 1], got [{images.min():.3g}, {images.max():.3g}]: "
                        "divide uint8 images by 255.")
    if expected_shape is not None and tuple(images.shape[1:]) != tuple(expected_shape):
        raise DataError(f"images have shape {tuple(images.shape[1:])} but the model expects {tuple(expected_shape)}.")


def public_images(name: str, shape, private_dataset: str) -> ImageData:
    """A public image set for pretraining, in the private images' `shape` [H, W, C]: smaller images are resized into
    the central 5/7 of the frame (as MNIST's digits sit in a 20x20 box of 28x28), others resized to the frame."""
    if name == private_dataset:
        raise DataError(f"--pretrain {name} is the data set being trained on privately: pretraining must use public "
                        f"data that holds no private record (for example --pretrain digits for mnist).")
    data = load_images(name)
    height, width, channels = (int(size) for size in shape)
    if data.images.shape[-1] != channels:
        raise DataError(f"--pretrain {name} has {data.images.shape[-1]} channel(s), the private images {channels}: "
                        "choose a public set with the same channels.")
    import tensorflow as tf
    if data.images.shape[1] < height and data.images.shape[2] < width:
        inner = (round(height * 5 / 7), round(width * 5 / 7))
        resized = tf.image.resize(data.images, inner, method="bilinear").numpy()
        top, left = (height - inner[0]) // 2, (width - inner[1]) // 2
        images = np.pad(resized, ((0, 0), (top, height - inner[0] - top), (left, width - inner[1] - left), (0, 0)))
    else:
        images = tf.image.resize(data.images, (height, width), method="bilinear").numpy()
    return ImageData(np.clip(images, 0, 1).astype(np.float32), data.labels, name, data.num_classes)
