"""One ledger per run of every release made from the private records, and the (epsilon, delta) of their composition.

Each mechanism enters by its zero-concentrated DP (zCDP) bound rho, which composes by addition:
- a Gaussian release of a statistic with L2 sensitivity s and noise stddev sigma: rho = s^2 / (2 sigma^2);
- an exponential-mechanism choice at epsilon eps: rho = eps^2 / 8 (Cesar and Rogers 2021, bounded range; the bound
  AIM and MST use).
dp_accounting composes them: a rho-zCDP mechanism has the Renyi-DP curve alpha * rho at every order alpha, which is
exactly that of a Gaussian event with noise multiplier 1 / sqrt(2 rho), so each release is composed into
dp_accounting's RdpAccountant as such an event and the accountant converts the sum to (epsilon, delta). Because the
curves add, a run that spends exactly `rho_for_epsilon(target, delta)` ends at exactly the target epsilon.
"""
import dataclasses
import math
from typing import List

import dp_accounting


@dataclasses.dataclass(frozen=True)
class Release:
    mechanism: str  # "gaussian" or "exponential"
    what: str  # the statistic released or the choice made, in words (public: names of columns, never values)
    rho: float
    stddev: float = None  # gaussian: the noise's standard deviation, in units of the statistic
    sensitivity: float = None  # L2 (gaussian) or score (exponential) sensitivity
    epsilon: float = None  # exponential: the mechanism's epsilon
    candidates: int = None  # exponential: how many candidates it chose among


def equivalent_gaussian(rho: float) -> dp_accounting.GaussianDpEvent:
    """The Gaussian event whose Renyi-DP curve is that of a rho-zCDP mechanism."""
    return dp_accounting.GaussianDpEvent(1 / math.sqrt(2 * rho))


def epsilon_for_rho(rho: float, delta: float) -> float:
    """The epsilon dp_accounting's RDP accountant gives for rho-zCDP at `delta`."""
    if rho <= 0:
        return 0.0
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(equivalent_gaussian(rho))
    return float(accountant.get_epsilon(delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho whose epsilon (as `epsilon_for_rho` computes it) is at most `epsilon`: the zCDP budget."""
    lo, hi = 0.0, 1.0
    while epsilon_for_rho(hi, delta) <= epsilon:
        lo, hi = hi, hi * 2
    for _ in range(200):  # bisection to float precision
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if epsilon_for_rho(mid, delta) <= epsilon else (lo, mid)
    return lo


class PrivacyLedger:
    """The releases of one run, in order."""

    def __init__(self):
        self.releases: List[Release] = []

    def gaussian(self, stddev: float, sensitivity: float, what: str) -> Release:
        if not stddev > 0:
            raise ValueError(f"a Gaussian release needs a positive noise stddev, got {stddev}.")
        release = Release("gaussian", what, sensitivity ** 2 / (2 * stddev ** 2), stddev=stddev,
                          sensitivity=sensitivity)
        self.releases.append(release)
        return release

    def exponential(self, epsilon: float, sensitivity: float, candidates: int, what: str) -> Release:
        if not epsilon > 0:
            raise ValueError(f"an exponential-mechanism choice needs a positive epsilon, got {epsilon}.")
        release = Release("exponential", what, epsilon ** 2 / 8, sensitivity=sensitivity, epsilon=epsilon,
                          candidates=candidates)
        self.releases.append(release)
        return release

    @property
    def rho(self) -> float:
        return math.fsum(release.rho for release in self.releases)

    def events(self) -> List[dp_accounting.DpEvent]:
        return [equivalent_gaussian(release.rho) for release in self.releases]

    def epsilon(self, delta: float) -> float:
        """Epsilon at `delta` of everything released so far (dp_accounting, RDP)."""
        if not self.releases:
            return 0.0
        accountant = dp_accounting.rdp.RdpAccountant()
        accountant.compose(dp_accounting.ComposedDpEvent(self.events()))
        return float(accountant.get_epsilon(delta))

    def to_list(self) -> List[dict]:
        return [{k: v for k, v in dataclasses.asdict(release).items() if v is not None} for release in self.releases]

    def counts(self) -> dict:
        """How many releases each mechanism made."""
        counts = {}
        for release in self.releases:
            counts[release.mechanism] = counts.get(release.mechanism, 0) + 1
        return counts
