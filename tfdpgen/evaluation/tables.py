"""Table metrics: marginal distances, association differences and machine-learning efficacy.

Rows are dicts of columns (decoded values: category strings, numbers). For the marginals and associations every
column is made categorical: categories by their declared values, numbers into 10 equal bins over their declared bounds.
"""
import itertools

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tfdpgen.data.tables import TableSchema, encode

BINS = 10


def codes(columns: dict, schema: TableSchema) -> np.ndarray:
    """[N, columns] integer codes: category index, or numeric bin."""
    out = []
    for column in schema.columns:
        values = np.asarray(columns[column.name])
        if column.type == "categorical":
            lookup = {value: index for index, value in enumerate(column.values)}
            out.append([lookup[v.decode() if isinstance(v, bytes) else str(v)] for v in values])
        else:
            scaled = (values.astype(np.float64) - column.min) / (column.max - column.min)
            out.append(np.clip((scaled * BINS).astype(int), 0, BINS - 1))
    return np.stack([np.asarray(c) for c in out], axis=1)


def sizes(schema: TableSchema):
    return [column.width if column.type == "categorical" else BINS for column in schema.columns]


def total_variation(a: np.ndarray, b: np.ndarray, size: int) -> float:
    """TV distance between the empirical distributions of two code vectors over `size` values."""
    p = np.bincount(a, minlength=size) / len(a)
    q = np.bincount(b, minlength=size) / len(b)
    return 0.5 * float(np.abs(p - q).sum())


def marginal_distances(real: np.ndarray, synthetic: np.ndarray, schema: TableSchema) -> dict:
    """Mean TV distance over all 1-way marginals, all 2-way marginals, and all 3-way marginals that hold the
    condition column."""
    widths = sizes(schema)
    target = [column.name for column in schema.columns].index(schema.condition)

    def tv(columns):
        shape = [widths[c] for c in columns]
        flat = lambda codes: np.ravel_multi_index(tuple(codes[:, c] for c in columns), shape)  # noqa: E731
        return total_variation(flat(real), flat(synthetic), int(np.prod(shape)))

    others = [c for c in range(len(widths)) if c != target]
    one = [tv((i,)) for i in range(len(widths))]
    two = [tv(pair) for pair in itertools.combinations(range(len(widths)), 2)]
    three = [tv(pair + (target,)) for pair in itertools.combinations(others, 2)]
    return {"tv_1way_mean": float(np.mean(one)), "tv_2way_mean": float(np.mean(two)) if two else 0.0,
            "tv_3way_target_mean": float(np.mean(three)) if three else 0.0}


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V association of two code vectors (0: independent, 1: one determines the other)."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    if min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = np.sum((table - expected) ** 2 / np.maximum(expected, 1e-12))
    return float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))


def association_difference(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Mean |V_real - V_synthetic| of Cramér's V over all column pairs."""
    pairs = list(itertools.combinations(range(real.shape[1]), 2))
    return float(np.mean([abs(cramers_v(real[:, i], real[:, j]) - cramers_v(synthetic[:, i], synthetic[:, j]))
                          for i, j in pairs])) if pairs else 0.0


def as_rows(columns: dict):
    names = list(columns)
    values = [[v.decode() if isinstance(v, bytes) else v for v in np.asarray(columns[n]).tolist()] for n in names]
    return [dict(zip(names, row)) for row in zip(*values)]


def ml_efficacy(train: dict, test: dict, schema: TableSchema) -> dict:
    """Logistic regression and gradient-boosted trees trained on `train` rows to predict the condition column,
    scored on `test` rows: accuracy and ROC AUC (one-vs-rest for several classes)."""
    train_data, test_data = encode(as_rows(train), schema), encode(as_rows(test), schema)
    classes = len(schema.condition_column.values)
    results = {}
    for name, model in (("logistic_regression", LogisticRegression(max_iter=2000)),
                        ("gradient_boosting", HistGradientBoostingClassifier(random_state=0))):
        if len(np.unique(train_data.labels)) < 2:  # a generator that produced one class only
            results[name] = {"accuracy": float(np.mean(test_data.labels == train_data.labels[0])), "roc_auc": 0.5}
            continue
        model.fit(train_data.features, train_data.labels)
        probabilities = np.zeros((len(test_data.labels), classes))
        probabilities[:, model.classes_] = model.predict_proba(test_data.features)
        accuracy = float(np.mean(np.argmax(probabilities, 1) == test_data.labels))
        try:
            auc = (roc_auc_score(test_data.labels, probabilities[:, 1]) if classes == 2 else
                   roc_auc_score(test_data.labels, probabilities, multi_class="ovr", labels=list(range(classes))))
        except ValueError:  # one class only in the test rows
            auc = float("nan")
        results[name] = {"accuracy": accuracy, "roc_auc": float(auc)}
    return results


def decode_encoded(features: np.ndarray, labels: np.ndarray, schema: TableSchema) -> dict:
    """Encoded rows (data.tables) back to columns of declared values."""
    columns, start = {}, 0
    for column in schema.columns:
        if column.name == schema.condition:
            columns[column.name] = np.array(column.values)[labels]
            continue
        part = features[:, start:start + column.width]
        start += column.width
        if column.type == "categorical":
            columns[column.name] = np.array(column.values)[np.argmax(part, 1)]
        else:
            columns[column.name] = column.min + (part[:, 0] + 1) / 2 * (column.max - column.min)
    return columns
