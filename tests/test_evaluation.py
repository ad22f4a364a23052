"""Every evaluation metric on cases with known answers, and `tfdpgen evaluate` on a finished quick run."""
import json

import numpy as np
import scipy.linalg
import pytest

from tfdpgen import cli
from tfdpgen.data.images import load_images
from tfdpgen.data.tables import Column, TableSchema, load_table
from tfdpgen.evaluation import audits, images, tables


@pytest.fixture(scope="module")
def digits():
    data = load_images("digits")
    return data.images[:1200], data.labels[:1200], data.images[1200:], data.labels[1200:]


def test_identical_feature_sets_have_zero_distance_and_full_precision_recall():
    a = np.random.default_rng(0).normal(size=(400, 8))
    assert images.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert images.precision_recall(a, a) == (1.0, 1.0)
    shifted = a + 3.0
    assert images.frechet_distance(a, shifted) == pytest.approx(8 * 9.0, rel=1e-6)
    precision, recall = images.precision_recall(a, shifted)
    assert precision < 0.2 and recall < 0.2


def test_frechet_distance_matches_the_closed_form_with_singular_covariances():
    """N(0, I) against N(m, 4 I) in 6 dimensions: ||m||^2 + 6 (1 + 4 - 2 * 2); 40 features that never fire (dead
    units, zero variance in both sets) change nothing, and an arbitrary pair matches SciPy's matrix square root."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200_000, 6)), 3.0 + 2.0 * rng.normal(size=(200_000, 6))
    assert images.frechet_distance(a, b) == pytest.approx(6 * 9.0 + 6.0, rel=0.01)
    dead = np.zeros((200_000, 40))
    assert images.frechet_distance(np.c_[a, dead], np.c_[b, dead]) == pytest.approx(6 * 9.0 + 6.0, rel=0.01)
    x, y = rng.normal(size=(500, 10)) @ rng.normal(size=(10, 10)), rng.exponential(size=(500, 10))
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    by_sqrtm = (np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(cov_x + cov_y)
                - 2 * np.trace(np.real(scipy.linalg.sqrtm(cov_x @ cov_y))))
    assert images.frechet_distance(x, y) == pytest.approx(by_sqrtm, rel=1e-6)


def test_tstr_with_real_labels_reaches_the_reference_and_shuffled_labels_give_chance(digits):
    """Shuffled labels leave the classifier a few image clusters mapped to arbitrary classes, so its accuracy moves
    by about a tenth with each cluster that lands on its own class, not by 0.012 as independent guesses would:
    permutations 0-3 gave 0.157, 0.181, 0.183 and 0.126. The bar holds for each of three permutations (the old one,
    within 0.06 of 0.1, held at permutation 0 only)."""
    train, train_labels, test, test_labels = digits
    reference = images.tstr_accuracy(train, train_labels, test, test_labels, 10)
    shuffled = [images.tstr_accuracy(train, np.random.default_rng(seed).permutation(train_labels), test, test_labels,
                                     10) for seed in range(3)]
    assert reference > 0.85
    assert max(shuffled) < 0.25, shuffled


def test_tstr_chooses_its_epoch_on_the_training_images_own_share(digits):
    """The returned weights are those of the epoch with the lowest loss on the held-back tenth of the training images,
    never chosen on the images it is finally scored on."""
    train, train_labels, _, _ = digits
    classifier = images.train_classifier(train, train_labels, 10, epochs=6, selection_share=0.1)
    chosen = np.random.default_rng(0).permutation(len(train))[:120]
    history = classifier.history.history
    assert 1 <= classifier.selected_epoch <= 6
    assert history["val_loss"][classifier.selected_epoch - 1] == min(history["val_loss"])
    best_accuracy = history["val_accuracy"][classifier.selected_epoch - 1]
    assert images.accuracy(classifier, train[chosen], train_labels[chosen]) == pytest.approx(best_accuracy, abs=1e-6)


def schema_of_two(width_a=3, width_b=4):
    return TableSchema([Column("a", "categorical", [str(i) for i in range(width_a)]),
                        Column("b", "categorical", [str(i) for i in range(width_b)]),
                        Column("x", "continuous", min=0.0, max=1.0)], "a")


def test_table_distances_on_known_cases():
    schema = schema_of_two()
    rng = np.random.default_rng(0)
    n = 4000
    independent = {"a": rng.integers(0, 3, n).astype(str), "b": rng.integers(0, 4, n).astype(str),
                   "x": rng.uniform(size=n)}
    real = tables.codes(independent, schema)
    same = tables.marginal_distances(real, real, schema)
    assert same == {"tv_1way_mean": 0.0, "tv_2way_mean": 0.0, "tv_3way_target_mean": 0.0}
    assert tables.association_difference(real, real) == 0.0
    # another independent sample: marginals close, associations near 0 on both sides
    other = tables.codes({"a": rng.integers(0, 3, n).astype(str), "b": rng.integers(0, 4, n).astype(str),
                          "x": rng.uniform(size=n)}, schema)
    assert tables.marginal_distances(real, other, schema)["tv_1way_mean"] < 0.03
    assert tables.association_difference(real, other) < 0.03
    # b a copy of a in the synthetic table: Cramér's V 1 there, ~0 in the real one
    dependent = dict(independent, b=independent["a"])
    assert tables.cramers_v(*tables.codes(dependent, schema)[:, :2].T) == pytest.approx(1.0)
    assert tables.association_difference(real, tables.codes(dependent, schema)) == pytest.approx(1 / 3, abs=0.02)
    # a point mass against a uniform column: TV = 1 - 1/3
    assert tables.total_variation(np.zeros(300, int), np.arange(300) % 3, 3) == pytest.approx(2 / 3)


def test_ml_efficacy_identical_data_reaches_reference_and_shuffled_target_is_chance():
    data = load_table("breast_cancer")
    columns = tables.decode_encoded(data.features, data.labels, data.schema)
    train = {k: v[:400] for k, v in columns.items()}
    test = {k: v[400:] for k, v in columns.items()}
    real = tables.ml_efficacy(train, test, data.schema)
    assert real["logistic_regression"]["roc_auc"] > 0.95 and real["gradient_boosting"]["accuracy"] > 0.9
    shuffled = dict(train, diagnosis=np.random.default_rng(0).permutation(train["diagnosis"]))
    chance = tables.ml_efficacy(shuffled, test, data.schema)
    assert abs(chance["logistic_regression"]["roc_auc"] - 0.5) < 0.15


def test_copying_generator_is_flagged_and_membership_inference_sees_it(digits):
    train, _, held_out, _ = digits
    flat_train, flat_held_out = train.reshape(len(train), -1), held_out.reshape(len(held_out), -1)
    copies = flat_train[:500]  # a "generator" returning training records verbatim
    memo = audits.memorization(copies, flat_train, flat_held_out)
    assert memo["flagged"] and memo["near_copy_rate"] == 1.0
    members = -audits.distance_to_closest(flat_train[:500], copies)
    nonmembers = -audits.distance_to_closest(flat_held_out[:500], copies)
    assert audits.attack_auc(members, nonmembers) > 0.99
    assert audits.empirical_epsilon(members, nonmembers, 1e-5) > 3.0
    fresh = flat_held_out[:300]  # new real records are not copies
    assert not audits.memorization(fresh, flat_train, flat_held_out[300:])["flagged"]


def test_empirical_epsilon_is_zero_without_signal_and_bounded_by_sample_size():
    rng = np.random.default_rng(1)
    assert audits.empirical_epsilon(rng.normal(size=500), rng.normal(size=500), 1e-5) < 0.3
    perfect = audits.empirical_epsilon(np.ones(500), np.zeros(500), 1e-5)
    assert 4.0 < perfect < np.log(500 / 0.5)  # even a perfect attack only proves what 500 samples can


@pytest.mark.parametrize("family", ["cgan", "tabgan"])
def test_evaluate_writes_every_field_and_the_pictures(tmp_path, family, capsys):
    run = tmp_path / family
    assert cli.main(["train", "--model", family, "--epochs", "2", "--output", str(run), "--quiet"]) == 0
    assert cli.main(["evaluate", "--run", str(run), "--n-samples", "300"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((run / "evaluation.json").read_text())
    for field in ("family", "dataset", "synthetic_samples", "held_out_records", "training_records", "privacy",
                  "utility", "membership_inference", "memorization", "caveat"):
        assert field in result, field
    audit = result["membership_inference"]
    assert set(audit["attacks"]) == {"loss", "distance_to_closest_synthetic"}
    assert audit["consistent"] and audit["empirical_epsilon_lower_bound"] <= result["privacy"]["epsilon"]
    assert not result["memorization"]["flagged"]
    if family == "cgan":
        for field in ("frechet_distance", "precision", "recall", "tstr_accuracy", "reference_accuracy"):
            assert result["utility"][field] is not None, field
        assert (run / "evaluation_samples.png").exists()
    else:
        for field in ("tv_1way_mean", "tv_2way_mean", "association_difference", "ml_efficacy_synthetic",
                      "ml_efficacy_real"):
            assert field in result["utility"], field
        assert (run / "evaluation_columns.png").exists()
    assert "membership inference" in printed and "consistent" in printed


def test_the_classifier_trains_without_tensorflow_logging_errors(digits, capfd):
    """Bug caught: under op determinism (a DP-SGD run turns it on; conftest too), Keras' pipeline for arrays made
    TensorFlow log "E0000 ... NodeDef mentions attribute use_unbounded_threadpool" at every classifier fit."""
    from tensorflow.python.framework import config
    assert config.is_op_determinism_enabled()
    train, train_labels, test, test_labels = digits
    capfd.readouterr()
    images.tstr_accuracy(train[:300], train_labels[:300], test[:100], test_labels[:100], 10, epochs=2)
    assert "NodeDef mentions" not in capfd.readouterr().err
