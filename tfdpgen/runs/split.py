"""A run's records: loaded for its family's data kind, and split into the records it trains on and those held out."""
import numpy as np

from tfdpgen.data.images import load_images
from tfdpgen.data.tables import load_table
from tfdpgen.models.registry import TABLE

HOLDOUT_ORDERS = ("random", "tail")
HOLDOUT_SEED = 0  # public: which records are held out is not a secret, the records are


def load_data(family, dataset, data_dir, schema, frame=None, num_classes=None):
    """The data of a run of `family` (a registry record): an image set of `num_classes` declared classes, or a table
    coded compactly by its schema (`frame`: a DataFrame)."""
    if family.data == TABLE:
        return load_table(dataset, data_dir, schema, frame)
    return load_images(dataset, data_dir, num_classes)


def load_records(family, dataset, data_dir, schema, frame=None, num_classes=None):
    """(records, labels, the loaded data): the records as the networks take them (images, or a table's encoded
    rows)."""
    data = load_data(family, dataset, data_dir, schema, frame, num_classes)
    return (data.features if family.data == TABLE else data.images), data.labels, data


def held_out_count(size: int, holdout) -> int:
    """How many records are held out: `holdout` is a fraction in [0, 1) or a count."""
    if isinstance(holdout, float) and 0 <= holdout < 1:
        count = int(round(size * holdout))
    elif isinstance(holdout, int) and not isinstance(holdout, bool) and 0 <= holdout < size:
        count = holdout
    else:
        raise ValueError(f"--holdout must be a fraction in [0, 1) or a number of records below {size}, got "
                         f"{holdout!r}.")
    if size - count < 2:
        raise ValueError(f"--holdout {holdout} leaves {size - count} training records of {size}: hold out fewer.")
    return count


def split_indices(size: int, count: int, order: str):
    """(train indices, held-out indices), each sorted. "random": a uniformly random subset (fixed public seed), so
    training and held-out records are exchangeable, as membership-inference audits assume; "tail": the last `count`
    records in file order (a fixed split such as ../shared/data's)."""
    if order not in HOLDOUT_ORDERS:
        raise ValueError(f"--holdout-order must be one of {HOLDOUT_ORDERS}, got {order!r}.")
    if order == "tail":
        return np.arange(size - count), np.arange(size - count, size)
    held_out = np.sort(np.random.default_rng(HOLDOUT_SEED).permutation(size)[:count])
    return np.setdiff1d(np.arange(size), held_out), held_out


def split(size: int, holdout, order: str):
    """(train indices, held-out indices, split.json's content) of a new run over `size` records."""
    count = held_out_count(size, holdout)
    train, held_out = split_indices(size, count, order)
    return train, held_out, {"records": size, "held_out_count": count, "order": order, "seed": HOLDOUT_SEED,
                             "note": "record indices in the order the data set loads; held_out_indices never trained "
                                     "the model", "held_out_indices": held_out.tolist()}
