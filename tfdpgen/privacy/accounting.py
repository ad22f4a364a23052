"""Privacy accounting for DP-SGD with dp_accounting: epsilon from settings, noise from a target epsilon.

Every DP step is one Poisson-subsampled Gaussian release (sampling probability q, noise multiplier z); T steps are its
T-fold composition. RDP is the default accountant; PLD is tighter and slower.
"""
import math

import dp_accounting
from absl import logging as absl_logging

ACCOUNTANTS = ("rdp", "pld")


def dp_sgd_event(noise_multiplier: float, sampling_probability: float, steps: int,
                 release: float = None) -> dp_accounting.DpEvent:
    """`steps` DP-SGD steps, after one Gaussian release of noise multiplier `release` (its noise std over its L2
    sensitivity; a family's one-shot statistic, such as the tabular GAN's noisy marginals) when one was made."""
    step = dp_accounting.PoissonSampledDpEvent(sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier))
    event = dp_accounting.SelfComposedDpEvent(step, int(steps))
    if release is None:
        return event
    return dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(release)] + ([event] if steps > 0 else []))


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


def make_accountant(accountant: str) -> dp_accounting.PrivacyAccountant:
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if accountant == "pld":
        return dp_accounting.pld.PLDAccountant()
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}.")


def compute_epsilon(noise_multiplier: float, sampling_probability: float, steps: int, delta: float,
                    accountant: str = "rdp", release: float = None) -> float:
    """Epsilon spent after `steps` DP-SGD steps (and the release, if any); inf without noise, 0 before anything."""
    if steps <= 0 and release is None:
        return 0.0
    if noise_multiplier <= 0 or release == 0:
        return math.inf
    acc = make_accountant(accountant)
    acc.compose(dp_sgd_event(noise_multiplier, sampling_probability, max(steps, 0), release))
    return float(acc.get_epsilon(delta))


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
    # dp-accounting 0.6 warns for each RDP order it drops while the search tries small noise at large q (the bound
    # over the remaining orders is still an upper bound): a wall of lines per run, so quiet during the search only.
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        return float(dp_accounting.calibrate_dp_mechanism(
            lambda: make_accountant(accountant),
            lambda z: dp_sgd_event(z, sampling_probability, steps, release),
            target_epsilon, delta, bracket_interval=bracket, tol=1e-5,
        ))
    finally:
        absl_logging.set_verbosity(verbosity)


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
