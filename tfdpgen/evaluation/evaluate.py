"""What a trained generator's synthetic data is worth, and whether its privacy claim survives attacks (`tfdpgen
evaluate` hands it a finished run's model, records and report: runs.use.evaluate_run).

Everything here reads the private training records and the held-out records, so the figures are for the data owner:
they are not covered by the run's differential privacy guarantee (publishing them leaks a little).
"""
import numpy as np
import tensorflow as tf

from tfdpgen.data.tables import encode
from tfdpgen.evaluation import audits, images, tables
from tfdpgen.evaluation.plots import save_image_grid, save_real_synthetic_histograms
from tfdpgen.privacy.settings import PrivacySettings

FEATURE_NOTE = ("Frechet distance and precision/recall use the penultimate features of a small CNN trained on the first "
                "half of the held-out real images (never seen by the generator), scored against the second half; it "
                "is not Inception, so this is not the published FID and only compares with itself.")


def per_example_losses(model, x, y, report) -> np.ndarray:
    """The model's own per-example loss (negative ELBO, discriminator loss on real rows, denoising loss, the marginal
    family's negative log-likelihood, ...)."""
    if hasattr(model, "record_losses"):
        return model.record_losses(x, y)
    settings = PrivacySettings(dataset_size=report["dataset_size"], batch_size=report["batch_size"],
                               epochs=max(report["epochs"], 1.0), l2_norm_clip=report["l2_norm_clip"],
                               noise_multiplier=report["noise_multiplier"], delta=report["delta"])
    model.compile(privacy=settings, optimizer="dp-sgd")
    losses = [model.per_example_terms(tf.constant(x[i:i + 256]), tf.constant(y[i:i + 256]), training=False)["loss"]
              for i in range(0, len(x), 256)]
    return np.concatenate([loss.numpy() for loss in losses])


def membership_audit(model, train, train_labels, held_out, held_out_labels, flat_train, flat_held_out, synthetic,
                     report, size, split_order="random", seed=0) -> dict:
    """Members: training records; non-members: held-out records; two threshold attacks. `flat_*` are the records
    in the space of the flattened `synthetic` samples (for distances)."""
    rng = np.random.default_rng(seed)
    # With a file-order split, members are the training records nearest the held-out ones in the file (data files
    # are often ordered by source, as MNIST's test file is by writer population), so the attacks see membership
    # rather than a change of source; with a random split, any training records.
    m = np.arange(len(train) - size, len(train)) if split_order == "tail" else rng.choice(len(train), size, replace=False)
    n = rng.choice(len(held_out), size, replace=False)
    attacks = {
        # a member's loss is lower: score = -loss
        "loss": (-per_example_losses(model, train[m], train_labels[m], report),
                 -per_example_losses(model, held_out[n], held_out_labels[n], report)),
        # a memorized member has a synthetic sample close by: score = -distance to the closest synthetic sample
        "distance_to_closest_synthetic": (-audits.distance_to_closest(flat_train[m], synthetic),
                                          -audits.distance_to_closest(flat_held_out[n], synthetic)),
    }
    delta = report["delta"]
    confidence = 1 - 0.05 / len(attacks)  # 95% for all attacks together (Bonferroni)
    results = {name: {"auc": audits.attack_auc(*scores),
                      "empirical_epsilon": audits.empirical_epsilon(*scores, delta, confidence)}
               for name, scores in attacks.items()}
    strongest = max(result["empirical_epsilon"] for result in results.values())
    claimed = report["epsilon"]
    return {"members": size, "non_members": size, "attacks": results, "empirical_epsilon_lower_bound": strongest,
            "claimed_epsilon": claimed, "consistent": claimed is None or strongest <= claimed,
            "note": "evidence, not proof: a lower bound from two attacks, 95% confidence for both together (threshold "
                    "chosen on half the records, bounded on the other half); the claimed epsilon is an "
                    "upper bound for every attack" + (
                        "" if split_order == "random" else
                        ". The held-out records are the last ones of the file, not a random subset: members (the "
                        "training records just before them) and non-members may still differ in distribution, which "
                        "the attacks also pick up, so the empirical epsilon is not a strict lower bound here (train "
                        "with --holdout-order random for one)")}


def synthetic_labels(held_out_labels, n, num_classes, seed=0):
    """Class labels for conditional sampling, at the held-out frequencies."""
    frequencies = np.bincount(held_out_labels, minlength=num_classes) / len(held_out_labels)
    return np.random.default_rng(seed).choice(num_classes, n, p=frequencies).astype(np.int32)


def evaluate_images(model, family, train, train_labels, test, test_labels, n, picture):
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    half = len(test) // 2
    feature_classifier = images.train_classifier(test[:half], test_labels[:half], num_classes)
    scoring, scoring_labels = test[half:], test_labels[half:]
    labels = synthetic_labels(test_labels, n, num_classes) if model.num_classes else None
    synthetic = model.sample(n, seed=0, labels=labels)
    real_features = images.features(feature_classifier, scoring)
    fake_features = images.features(feature_classifier, synthetic)
    precision, recall = images.precision_recall(real_features, fake_features)
    result = {"frechet_distance": images.frechet_distance(real_features, fake_features), "precision": precision,
              "recall": recall, "feature_space": FEATURE_NOTE,
              "real_reference_frechet_distance": images.frechet_distance(
                  images.features(feature_classifier, train[:len(scoring)]), real_features)}
    result["reference_accuracy"] = images.tstr_accuracy(train, train_labels, scoring, scoring_labels, num_classes)
    if model.num_classes:
        result["tstr_accuracy"] = images.tstr_accuracy(synthetic, labels, scoring, scoring_labels, num_classes)
        grid_labels = np.tile(np.arange(model.num_classes), 8)
        save_image_grid(model.sample(len(grid_labels), seed=1, labels=grid_labels),
                        picture("samples"), columns=model.num_classes,
                        title=f"{family}: one class per column")
    else:
        result["tstr_accuracy"] = None
        result["tstr_note"] = "train-on-synthetic needs labels: this family is unconditional"
        save_image_grid(synthetic[:64], picture("samples"), title=family)
    return result, synthetic


def evaluate_table(model, data, train, train_labels, test, test_labels, n, picture):
    schema = data.schema
    labels = synthetic_labels(test_labels, n, len(schema.condition_column.values))
    synthetic_columns = model.sample(n, seed=0, labels=labels)
    real_columns = tables.decode_encoded(test, test_labels, schema)
    train_columns = tables.decode_encoded(train, train_labels, schema)
    real_codes, fake_codes = tables.codes(real_columns, schema), tables.codes(synthetic_columns, schema)
    result = tables.marginal_distances(real_codes, fake_codes, schema)
    result["association_difference"] = tables.association_difference(real_codes, fake_codes)
    result["ml_efficacy_synthetic"] = tables.ml_efficacy(synthetic_columns, real_columns, schema)
    result["ml_efficacy_real"] = tables.ml_efficacy(train_columns, real_columns, schema)
    result["target"] = schema.condition
    save_real_synthetic_histograms(real_columns, synthetic_columns, picture("columns"))
    synthetic_encoded = encode(tables.as_rows(synthetic_columns), schema)
    # distances in the networks' space: the one-hot and scaled features plus the condition's one-hot
    width = len(schema.condition_column.values)
    synthetic = np.c_[synthetic_encoded.features, np.eye(width)[synthetic_encoded.labels]]
    return result, synthetic


def evaluate(model, family: str, tabular: bool, data, train, train_labels, test, test_labels, report: dict,
             split_order: str, picture, n_samples: int = None) -> dict:
    """The evaluation of `model` (of `family`; `tabular` for a table family) against the real `test` records, its
    training records beside them for the audits; `report` is its privacy.json, `picture(kind)` the path each picture is
    written to. Returns what evaluation.json holds."""
    if n_samples is not None and not (isinstance(n_samples, int) and 1 <= n_samples <= 100_000):
        raise ValueError(f"--n-samples must be a whole number in [1, 100000], got {n_samples!r}.")
    n = n_samples or min(max(len(test), 500), 2000)
    if tabular:
        utility, synthetic = evaluate_table(model, data, train, train_labels, test, test_labels, n, picture)
        condition = np.eye(len(data.schema.condition_column.values))
        flat_train, flat_test = np.c_[train, condition[train_labels]], np.c_[test, condition[test_labels]]
    else:
        utility, synthetic = evaluate_images(model, family, train, train_labels, test, test_labels, n, picture)
        flat_train, flat_test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    synthetic = synthetic.reshape(len(synthetic), -1)
    size = min(len(test), len(train), 1000)
    return {"family": family, "synthetic_samples": n, "held_out_records": len(test), "training_records": len(train),
            "privacy": {key: report[key] for key in ("epsilon", "delta", "reproducible_noise", "warning")
                        if key in report},
            "utility": utility,
            "membership_inference": membership_audit(model, train, train_labels, test, test_labels, flat_train,
                                                     flat_test, synthetic, report, size, split_order),
            "memorization": audits.memorization(synthetic, flat_train, flat_test),
            "caveat": "computed from the private training records and the held-out records: these figures are "
                      "not covered by the run's differential privacy guarantee"}


def readable_epsilon(epsilon) -> str:
    """Three significant digits for people (the exact figure is in the JSON)."""
    return "none (not DP)" if epsilon is None else f"{epsilon:.3g}"


def summary(result: dict) -> str:
    lines = [f"{result['family']} on {result['dataset']}: epsilon={readable_epsilon(result['privacy']['epsilon'])}, "
             f"{result['synthetic_samples']} synthetic samples, {result['held_out_records']} held-out records"]
    if "warning" in result["privacy"]:
        lines.append(f"  WARNING: {result['privacy']['warning']}")
    utility = result["utility"]
    if "frechet_distance" in utility:
        lines.append(f"  Frechet distance (small-CNN features) {utility['frechet_distance']:.3f} "
                     f"(real vs real: {utility['real_reference_frechet_distance']:.3f}); precision "
                     f"{utility['precision']:.3f}, recall {utility['recall']:.3f}")
        tstr = utility["tstr_accuracy"]
        lines.append(f"  train on synthetic, test on real: "
                     f"{'n/a (unconditional)' if tstr is None else f'{tstr:.3f}'}; trained on real: "
                     f"{utility['reference_accuracy']:.3f}")
    else:
        lines.append(f"  mean TV distance: 1-way {utility['tv_1way_mean']:.3f}, 2-way {utility['tv_2way_mean']:.3f}; "
                     f"association difference {utility['association_difference']:.3f}")
        for name in ("logistic_regression", "gradient_boosting"):
            synthetic, real = utility["ml_efficacy_synthetic"][name], utility["ml_efficacy_real"][name]
            lines.append(f"  {name} predicting {utility['target']}: accuracy {synthetic['accuracy']:.3f} / ROC AUC "
                         f"{synthetic['roc_auc']:.3f} (trained on real: {real['accuracy']:.3f} / {real['roc_auc']:.3f})")
    audit = result["membership_inference"]
    for name, attack in audit["attacks"].items():
        lines.append(f"  membership inference ({name}): AUC {attack['auc']:.3f}, empirical epsilon >= "
                     f"{attack['empirical_epsilon']:.2f}")
    lines.append(f"  claimed epsilon {readable_epsilon(audit['claimed_epsilon'])} vs empirical lower bound "
                 f"{audit['empirical_epsilon_lower_bound']:.2f}: {'consistent' if audit['consistent'] else 'VIOLATED'}")
    memo = result["memorization"]
    lines.append(f"  near-copies of training records: {memo['near_copy_rate']:.3%} (held-out baseline "
                 f"{memo['expected_rate']:.0%}){' FLAGGED' if memo['flagged'] else ''}")
    return "\n".join(lines)
