"""The privacy ledger: every mechanism a run applies to its private records, as dp_accounting events, and the one
place an epsilon is computed from them.

Every family records its mechanisms here: DP-SGD steps (one Poisson-sampled Gaussian per step, self-composed; with
adaptive clipping, the clipped sum and the count of unclipped examples together are one Gaussian at the step's noise
multiplier, Andrew et al. 2021, Thm. 1), one-shot Gaussian releases (the tabular GAN's marginals, DP-MERF's mean
embeddings, AIM's measurements) and exponential-mechanism choices (AIM's selections). One accountant converts the
whole ledger to (epsilon, delta), chosen by name as Opacus' accountant registry does:
- "rdp": dp_accounting's RdpAccountant. An exponential choice at epsilon eps (bounded range) is eps^2/8-zCDP (Cesar
  and Rogers 2021, the bound AIM and MST use), whose Renyi curve alpha * rho is exactly a Gaussian event's with noise
  multiplier 1 / sqrt(2 rho), so it enters as that event; a Gaussian release of noise stddev sigma and L2 sensitivity
  s enters as the Gaussian event sigma / s.
- "pld": dp_accounting's PLDAccountant, exact for Gaussian mechanisms, sampled or not (tighter than RDP). The
  exponential mechanism's zCDP bound has no privacy-loss distribution in dp_accounting, so a ledger holding a choice
  is accounted by RDP whichever accountant is asked for; and since both bound the same mechanisms, the PLD figure is
  never reported above the RDP one.
"""
import dataclasses
import logging
import math
from typing import List

import dp_accounting

ACCOUNTANTS = ("rdp", "pld")
GAUSSIAN, EXPONENTIAL, DP_SGD_STEPS = "gaussian", "exponential", "dp_sgd_steps"


class _DroppedRenyiOrders(logging.Filter):
    """dp-accounting 0.6 logs a warning for every Renyi order whose series does not converge ("_compute_log_a_frac
    failed to converge ... Excluding this order from the epsilon computation"), dozens per epsilon at small noise and
    large q. The epsilon over the remaining orders is still an upper bound (each order bounds it on its own), so the
    lines say nothing a user must act on; they are dropped here, and every other dp_accounting message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in str(record.msg)


logging.getLogger("absl").addFilter(_DroppedRenyiOrders())


def make_accountant(accountant: str) -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if accountant == "pld":
        return dp_accounting.pld.PLDAccountant()
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}.")


def equivalent_gaussian(rho: float) -> dp_accounting.GaussianDpEvent:
    """The Gaussian event whose Renyi-DP curve is that of a rho-zCDP mechanism."""
    return dp_accounting.GaussianDpEvent(1 / math.sqrt(2 * rho))


@dataclasses.dataclass(frozen=True)
class Release:
    """One mechanism applied to the private records (for DP-SGD: all of a run's steps)."""
    mechanism: str  # GAUSSIAN, EXPONENTIAL or DP_SGD_STEPS
    what: str  # the statistic released or the choice made, in words (public: names of columns, never values)
    rho: float = None  # zCDP of a one-shot release
    stddev: float = None  # gaussian: the noise's standard deviation, in units of the statistic
    sensitivity: float = None  # L2 (gaussian) or score (exponential) sensitivity
    epsilon: float = None  # exponential: the mechanism's epsilon
    candidates: int = None  # exponential: how many candidates it chose among
    noise_multiplier: float = None  # DP-SGD: the noise std over the clip norm (adaptive: the single-Gaussian z)
    sampling_probability: float = None  # DP-SGD: Poisson sampling probability q
    steps: int = None  # DP-SGD: how many steps

    def event(self) -> dp_accounting.DpEvent:
        if self.mechanism == GAUSSIAN:
            return dp_accounting.GaussianDpEvent(self.stddev / self.sensitivity)
        if self.mechanism == EXPONENTIAL:
            return equivalent_gaussian(self.rho)
        step = dp_accounting.PoissonSampledDpEvent(self.sampling_probability,
                                                   dp_accounting.GaussianDpEvent(self.noise_multiplier))
        return dp_accounting.SelfComposedDpEvent(step, self.steps)

    @property
    def private(self) -> bool:
        if self.mechanism == DP_SGD_STEPS:
            return self.noise_multiplier > 0 or self.steps == 0 or self.sampling_probability == 0
        return True  # a one-shot entry is refused at zero noise


class PrivacyLedger:
    """The mechanisms of one run, in order, and their composition under `accountant`."""

    def __init__(self, accountant: str = "rdp"):
        if accountant not in ACCOUNTANTS:
            raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}.")
        self.accountant = accountant
        self.releases: List[Release] = []

    def gaussian(self, stddev: float, sensitivity: float, what: str) -> Release:
        if not stddev > 0:
            raise ValueError(f"a Gaussian release needs a positive noise stddev, got {stddev}.")
        return self._add(Release(GAUSSIAN, what, sensitivity ** 2 / (2 * stddev ** 2), stddev=stddev,
                                 sensitivity=sensitivity))

    def exponential(self, epsilon: float, sensitivity: float, candidates: int, what: str) -> Release:
        if not epsilon > 0:
            raise ValueError(f"an exponential-mechanism choice needs a positive epsilon, got {epsilon}.")
        return self._add(Release(EXPONENTIAL, what, epsilon ** 2 / 8, sensitivity=sensitivity, epsilon=epsilon,
                                 candidates=candidates))

    def dp_sgd_steps(self, noise_multiplier: float, sampling_probability: float, steps: int,
                     what: str = "DP-SGD steps") -> Release:
        return self._add(Release(DP_SGD_STEPS, what, noise_multiplier=noise_multiplier,
                                 sampling_probability=sampling_probability, steps=int(steps)))

    def _add(self, release: Release) -> Release:
        self.releases.append(release)
        return release

    @property
    def rho(self) -> float:
        """The zCDP spent by the one-shot releases (what AIM's budget counts)."""
        return math.fsum(release.rho for release in self.releases if release.rho is not None)

    def event(self) -> dp_accounting.DpEvent:
        events = [release.event() for release in self.releases if release.mechanism != DP_SGD_STEPS or release.steps]
        return events[0] if len(events) == 1 else dp_accounting.ComposedDpEvent(events)

    def composed_by(self) -> str:
        """The accountant that composes this ledger: PLD only where it can represent every entry."""
        if self.accountant == "pld" and not any(r.mechanism == EXPONENTIAL for r in self.releases):
            return "pld"
        return "rdp"

    def epsilon(self, delta: float) -> float:
        """Epsilon at `delta` of everything recorded so far: 0 before anything, inf where a step had no noise."""
        if not any(r.mechanism != DP_SGD_STEPS or (r.steps and r.sampling_probability) for r in self.releases):
            return 0.0
        if not all(release.private for release in self.releases):
            return math.inf
        return epsilon_of(self.event(), delta, self.composed_by())

    def to_list(self) -> List[dict]:
        """The one-shot releases, as privacy.json lists them (the steps are described by the DP-SGD settings)."""
        return [{k: v for k, v in dataclasses.asdict(release).items() if v is not None}
                for release in self.releases if release.mechanism != DP_SGD_STEPS]

    def counts(self) -> dict:
        """How many releases each mechanism made (DP-SGD: how many steps)."""
        counts = {}
        for release in self.releases:
            counts[release.mechanism] = counts.get(release.mechanism, 0) + (
                release.steps if release.mechanism == DP_SGD_STEPS else 1)
        return counts


def epsilon_of(event: dp_accounting.DpEvent, delta: float, accountant: str = "rdp") -> float:
    """Epsilon at `delta` of `event` by `accountant`; RDP bounds PLD from above, so "pld" never exceeds "rdp"."""
    acc = make_accountant(accountant)
    acc.compose(event)
    epsilon = float(acc.get_epsilon(delta))
    if accountant == "pld":
        epsilon = min(epsilon, epsilon_of(event, delta, "rdp"))
    return epsilon
