"""Privacy audits: evidence, not proof. A membership-inference attack gives an empirical lower bound on epsilon that
the claimed epsilon must not fall below; the memorization check looks for synthetic near-copies of training records.

TensorFlow Privacy 0.9.0's pip package ships only a stub of its membership-inference module (`privacy_tests` is not
included), so the threshold attack and its statistics are computed here with scikit-learn and SciPy.
"""
import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score

from tfdpgen.evaluation.images import pairwise


def attack_auc(member_scores, nonmember_scores) -> float:
    """AUC of the attack that calls a record a member when its score is high (0.5: no better than chance)."""
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    return float(roc_auc_score(labels, np.r_[member_scores, nonmember_scores]))


def clopper_pearson_upper(errors: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    """One-sided upper confidence bounds (level 1 - alpha) on error rates from counts."""
    errors = np.asarray(errors)
    bound = beta.ppf(1 - alpha, errors + 1, np.maximum(trials - errors, 1))
    return np.where(errors >= trials, 1.0, bound)


def epsilon_estimates(fpr, fnr, delta):
    """max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)), elementwise; -inf where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        estimates = np.maximum(np.log((1 - delta - fpr) / fnr), np.log((1 - delta - fnr) / fpr))
    return np.where(np.isfinite(estimates), estimates, -np.inf)


def rates(members, nonmembers, thresholds):
    """(false positives, false negatives) of "member when score >= threshold", for each threshold."""
    members, nonmembers = np.sort(members), np.sort(nonmembers)
    false_positives = len(nonmembers) - np.searchsorted(nonmembers, thresholds, side="left")
    false_negatives = np.searchsorted(members, thresholds, side="left")
    return false_positives, false_negatives


def empirical_epsilon(member_scores, nonmember_scores, delta: float, confidence: float = 0.95, seed: int = 0) -> float:
    """A lower bound on epsilon that holds with probability `confidence` (Jagielski et al. 2020, Nasr et al. 2021).

    The records are split in two halves: the threshold with the largest estimate of
    max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)) is chosen on the first, and the bound is that
    expression with Clopper-Pearson upper bounds on FPR and FNR measured on the second, so choosing among thresholds
    does not inflate it. 0 when the attack gives no evidence."""
    rng = np.random.default_rng(seed)
    members, nonmembers = rng.permutation(np.asarray(member_scores)), rng.permutation(np.asarray(nonmember_scores))
    m, n = len(members) // 2, len(nonmembers) // 2
    thresholds = np.unique(np.r_[members[:m], nonmembers[:n]])
    fp, fn = rates(members[:m], nonmembers[:n], thresholds)
    # smoothed rates for the choice, so that a threshold without errors ranks first rather than undefined
    chosen = thresholds[np.argmax(epsilon_estimates((fp + 0.5) / (n + 1), (fn + 0.5) / (m + 1), delta))]
    fp, fn = rates(members[m:], nonmembers[n:], np.array([chosen]))
    alpha = (1 - confidence) / 2  # two rates bounded at once
    fpr = clopper_pearson_upper(fp, len(nonmembers) - n, alpha)
    fnr = clopper_pearson_upper(fn, len(members) - m, alpha)
    return float(max(0.0, epsilon_estimates(fpr, fnr, delta)[0]))


def distance_to_closest(points: np.ndarray, support: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For every row of `points`, the Euclidean distance to its nearest row of `support`."""
    points, support = points.reshape(len(points), -1), support.reshape(len(support), -1)
    return np.concatenate([pairwise(points[i:i + chunk], support).min(1) for i in range(0, len(points), chunk)])


def memorization(synthetic: np.ndarray, train: np.ndarray, held_out: np.ndarray, quantile: float = 0.05) -> dict:
    """Near-copies: synthetic samples closer to a training record than the `quantile` of held-out records are to
    their nearest training record. A generator that does not copy puts about `quantile` of its samples there (as a new
    real record would); the check is flagged when the synthetic share exceeds the held-out share by more than three
    standard errors of a two-proportion test."""
    fresh = distance_to_closest(held_out, train)  # how close a new real record falls to the training data
    threshold = float(np.quantile(fresh, quantile))
    to_train = distance_to_closest(synthetic, train)
    to_held_out = distance_to_closest(synthetic, held_out)
    rate, baseline = float(np.mean(to_train <= threshold)), float(np.mean(fresh <= threshold))
    pooled = (rate * len(to_train) + baseline * len(fresh)) / (len(to_train) + len(fresh))
    error = np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / len(to_train) + 1 / len(fresh)))
    return {"near_copy_threshold": threshold, "near_copy_rate": rate, "expected_rate": baseline,
            "flagged": bool(rate - baseline > 3 * error),
            "median_distance_to_train": float(np.median(to_train)),
            "median_distance_to_held_out": float(np.median(to_held_out))}
