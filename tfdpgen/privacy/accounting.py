"""Noise calibration, in one place: the noise (or the number of steps, or the zCDP budget) that reaches a target
epsilon, every epsilon computed by the run's PrivacyLedger (privacy/ledger.py).

Every DP step is one Poisson-subsampled Gaussian release (sampling probability q, noise multiplier z); T steps are its
T-fold composition. RDP is the default accountant; PLD is tighter and slower.
"""
import dataclasses
import functools
import math

import dp_accounting

from tfdpgen.privacy.ledger import PrivacyLedger, epsilon_of, equivalent_gaussian, make_accountant


def dp_sgd_ledger(noise_multiplier: float, sampling_probability: float, steps: int, accountant: str = "rdp",
                  release: float = None) -> PrivacyLedger:
    """The ledger of `steps` DP-SGD steps, after one Gaussian release of noise multiplier `release` (its noise std
    over its L2 sensitivity; a family's one-shot statistic, such as the tabular GAN's noisy marginals) if one is
    made."""
    ledger = PrivacyLedger(accountant)
    if release:  # 0: the statistic given exactly, a run without DP (its epsilon is inf by its noiseless steps)
        ledger.gaussian(release, 1.0, "a one-shot Gaussian release before the steps")
    ledger.dp_sgd_steps(noise_multiplier, sampling_probability, max(int(steps), 0))
    return ledger


def sum_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """With adaptive clipping, the noise multiplier z_sum of the clipped sum such that the sum (sensitivity C, noise
    z_sum*C) and the unclipped count (sensitivity 1/2, noise sigma_b) together equal one Gaussian at `noise_multiplier`
    z: z^-2 = z_sum^-2 + (2 sigma_b)^-2 (Andrew et al. 2021, Thm. 1). Needs z < 2 sigma_b; z = 0 stays 0 (no DP)."""
    if noise_multiplier == 0:
        return 0.0
    if not noise_multiplier < 2 * count_stddev:
        raise ValueError(f"noise_multiplier {noise_multiplier} must be below 2 * clipped_count_stddev = "
                         f"{2 * count_stddev}.")
    return (noise_multiplier ** -2 - (2 * count_stddev) ** -2) ** -0.5


def compute_epsilon(noise_multiplier: float, sampling_probability: float, steps: int, delta: float,
                    accountant: str = "rdp", release: float = None) -> float:
    """Epsilon spent after `steps` DP-SGD steps (and the release, if any); inf without noise, 0 before anything."""
    if steps <= 0 and release is None:
        return 0.0
    if noise_multiplier <= 0 or release == 0:
        return math.inf
    return dp_sgd_ledger(noise_multiplier, sampling_probability, steps, accountant, release).epsilon(delta)


def calibrate_noise_multiplier(target_epsilon: float, delta: float, sampling_probability: float, steps: int,
                               accountant: str = "rdp", release: float = None) -> float:
    """The smallest noise multiplier whose epsilon after `steps` steps is at most `target_epsilon`.

    Brent's method over dp_accounting (dp_accounting.calibrate_dp_mechanism); the result never exceeds the target and,
    with the tolerance used, lands within 1% of it. PLD searches below the RDP answer (RDP's epsilon bounds PLD's
    from above, so the RDP noise is always within budget), which keeps PLD away from tiny, costly noise values.
    """
    bracket = dp_accounting.LowerEndpointAndGuess(1e-3, 1.0)
    if accountant == "pld":
        rdp_noise = calibrate_noise_multiplier(target_epsilon, delta, sampling_probability, steps, "rdp", release)
        bracket = dp_accounting.ExplicitBracketInterval(0.5 * rdp_noise, rdp_noise)
    return float(dp_accounting.calibrate_dp_mechanism(
        lambda: make_accountant(accountant),
        lambda z: dp_sgd_ledger(z, sampling_probability, steps, accountant, release).event(),
        target_epsilon, delta, bracket_interval=bracket, tol=1e-5,
    ))


def max_steps_within(target_epsilon: float, noise_multiplier: float, sampling_probability: float, delta: float,
                     accountant: str = "rdp", upper: int = 1 << 24, release: float = None) -> int:
    """The largest number of steps whose epsilon is at most `target_epsilon` (bisection; epsilon grows with steps)."""
    if noise_multiplier <= 0:
        return 0
    spent = lambda steps: compute_epsilon(  # noqa: E731
        noise_multiplier, sampling_probability, steps, delta, accountant, release)
    lo, hi = 0, 1
    while hi < upper and spent(hi) <= target_epsilon:
        lo, hi = hi, hi * 2
    if hi >= upper:
        return upper
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if spent(mid) <= target_epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def epsilon_for_rho(rho: float, delta: float) -> float:
    """The epsilon dp_accounting's RDP accountant gives for rho-zCDP at `delta`."""
    if rho <= 0:
        return 0.0
    return epsilon_of(equivalent_gaussian(rho), delta, "rdp")


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


def gaussian_stddev_for_rho(sensitivity: float, rho: float) -> float:
    """The noise stddev at which a Gaussian release of L2 sensitivity `sensitivity` is rho-zCDP."""
    if not rho > 0:
        raise ValueError(f"a Gaussian release needs a positive zCDP budget rho, got {rho}.")
    return sensitivity / math.sqrt(2 * rho)


def release_noise_multiplier(noise_multiplier, target_epsilon, delta, sampling_probability, steps, share) -> float:
    """The noise multiplier (noise std over sensitivity) of a one-shot Gaussian release made before DP-SGD steps: 0 in
    a run without noise; `share` of the zCDP budget of a target epsilon; with a noise multiplier z alone, 3 z q sqrt(T),
    whose zCDP cost is about a ninth of the T steps' (each costs about q^2 / z^2 for small q)."""
    if noise_multiplier == 0:
        return 0.0
    if target_epsilon is not None:
        return 1 / math.sqrt(2 * share * rho_for_epsilon(target_epsilon, delta))
    return 3 * noise_multiplier * sampling_probability * math.sqrt(steps)


@dataclasses.dataclass(frozen=True)
class ReleaseBudget:
    """A one-shot family's budget: (epsilon, delta) under an accountant, as the noise its releases may take.

    `rho` is the zCDP budget, a hair under the target's, so that rounding never lands above it (AIM composes many
    releases in zCDP). A single Gaussian release is calibrated for the accountant: by RDP through that rho (as before),
    or exactly by PLD (dp_accounting's privacy loss distribution of the Gaussian mechanism; Balle and Wang 2018), which
    needs 5-9% less noise for the same (epsilon, delta).
    """
    epsilon: float
    delta: float
    accountant: str = "rdp"

    @functools.cached_property  # a bisection over the accountant: computed once
    def rho(self) -> float:
        return rho_for_epsilon(self.epsilon, self.delta) * (1 - 1e-9)

    def single_gaussian_stddev(self, sensitivity: float) -> float:
        """The noise stddev of one Gaussian release of L2 sensitivity `sensitivity` spending this whole budget."""
        if self.accountant == "rdp":
            return gaussian_stddev_for_rho(sensitivity, self.rho)
        rdp = 1 / math.sqrt(2 * self.rho)  # RDP's noise multiplier bounds the exact one from above
        multiplier = dp_accounting.calibrate_dp_mechanism(
            lambda: make_accountant(self.accountant), dp_accounting.GaussianDpEvent, self.epsilon, self.delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(0.5 * rdp, rdp), tol=1e-7)
        return sensitivity * float(multiplier)
