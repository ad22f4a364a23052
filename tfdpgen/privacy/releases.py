"""One-shot releases from private records: a statistic with Gaussian noise, and a choice by the exponential mechanism.

Each takes the private statistic in its bounded form (its sensitivity is the caller's claim, stated in the ledger
entry), draws from `rng` (a numpy Generator seeded from the run's secret noise key, never from a public seed) and
records the release in the run's PrivacyLedger, which is the only place epsilon comes from.
"""
import numpy as np

from tfdpgen.privacy.ledger import PrivacyLedger


def gaussian_release(values: np.ndarray, stddev: float, sensitivity: float, rng: np.random.Generator,
                     ledger: PrivacyLedger, what: str) -> np.ndarray:
    """`values` + N(0, stddev^2) per entry; `sensitivity` bounds the L2 change of `values` when one record is added or
    removed (a histogram of counts: 1)."""
    ledger.gaussian(stddev, sensitivity, what)
    values = np.asarray(values, np.float64)
    return values + rng.normal(0.0, stddev, values.shape)


def exponential_choice(scores: np.ndarray, epsilon: float, sensitivity: float, rng: np.random.Generator,
                       ledger: PrivacyLedger, what: str) -> int:
    """The index i chosen with probability proportional to exp(epsilon * scores[i] / (2 * sensitivity)), where
    `sensitivity` bounds how much any score moves when one record is added or removed. Sampled by the Gumbel-max trick
    (argmax of scaled scores plus independent Gumbel noise), which has exactly that distribution."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or not len(scores) or not np.all(np.isfinite(scores)):
        raise ValueError("the exponential mechanism needs a non-empty vector of finite scores.")
    ledger.exponential(epsilon, sensitivity, len(scores), what)
    return int(np.argmax(epsilon * scores / (2 * sensitivity) + rng.gumbel(size=len(scores))))

