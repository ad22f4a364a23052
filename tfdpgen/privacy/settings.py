"""One validated set of DP-SGD settings, checked before the first training step."""
import dataclasses
import math
from typing import Optional

from tfdpgen.privacy import accounting
from tfdpgen.privacy.ledger import ACCOUNTANTS

SAMPLINGS = ("poisson", "shuffle")
CLIPPINGS = ("fixed", "adaptive")


class PrivacySettingsError(ValueError):
    """DP settings that cannot be used as given; the message says what to change."""


DEFAULT_DELTA = 1e-5
LARGEST_FOR_DEFAULT_DELTA = 99_999  # DEFAULT_DELTA < 1/N up to here (Abadi et al. used it for MNIST's 60,000)


def default_delta(dataset_size: int) -> float:
    """DEFAULT_DELTA, the same for every data set up to LARGEST_FOR_DEFAULT_DELTA records: a delta tied to the exact
    private size would make the noise a step function of it (at epsilon 3, 1,000 and 1,001 records gave sigma 1.33
    and 1.49). A larger data set needs its delta given."""
    if dataset_size > LARGEST_FOR_DEFAULT_DELTA:
        suggestion = 10.0 ** -(math.ceil(math.log10(dataset_size)) + 1)
        raise PrivacySettingsError(
            f"the default delta {DEFAULT_DELTA:.0e} is for data sets of at most {LARGEST_FOR_DEFAULT_DELTA:,} "
            f"records; this one has more: give --delta below 1/N, for instance {suggestion:.0e}.")
    return DEFAULT_DELTA


def steps_per_epoch(dataset_size: int, batch_size: int, sampling: str) -> int:
    """Poisson: N/B expected-size batches, rounded; shuffle: the full batches of one pass (the remainder is dropped)."""
    if sampling == "poisson":
        return max(1, round(dataset_size / batch_size))
    return dataset_size // batch_size


@dataclasses.dataclass(frozen=True)
class PrivacySettings:
    """DP-SGD settings for one training run.

    Give `noise_multiplier`, `target_epsilon`, or both. With a target alone the noise is calibrated so that `epochs`
    epochs spend at most that epsilon; with both, the noise is as given and training stops at the target.
    `batch_size` is the expected batch size under Poisson sampling (q = batch_size / N). `delta` defaults to
    DEFAULT_DELTA (1e-5) for up to 99,999 records and must be given for more.

    `clipping="adaptive"` makes the clip norm follow the `target_quantile` of the per-example gradient norms
    (privacy.adaptive_clipping), starting at `l2_norm_clip`. Each step then releases a noised count besides the noised
    sum; `noise_multiplier` stays the single-Gaussian equivalent z the accounting uses, and the sum gets the larger
    `effective_noise_multiplier` z_sum = (z^-2 - (2 sigma_b)^-2)^(-1/2), sigma_b = `clipped_count_stddev`
    (default batch_size / 20).

    `release_noise_multiplier` (None: no release): a one-shot Gaussian release the family makes from the training
    records before its steps (the tabular GAN's noisy marginals), as its noise std over its L2 sensitivity; every
    epsilon, the calibration and the stop at the target compose it with the steps.
    """

    dataset_size: int
    batch_size: int
    epochs: float
    l2_norm_clip: float = 1.0
    noise_multiplier: Optional[float] = None
    target_epsilon: Optional[float] = None
    delta: Optional[float] = None
    sampling: str = "poisson"
    accountant: str = "rdp"
    clipping: str = "fixed"
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clipped_count_stddev: Optional[float] = None
    release_noise_multiplier: Optional[float] = None

    def __post_init__(self):
        def fail(message):
            raise PrivacySettingsError(message)

        if not isinstance(self.dataset_size, int) or self.dataset_size <= 0:
            fail(f"dataset_size must be a positive number of records, got {self.dataset_size!r}: the data is empty?")
        if not isinstance(self.batch_size, int) or not 0 < self.batch_size <= self.dataset_size:
            fail(f"batch_size must be an integer in [1, dataset_size={self.dataset_size}], got {self.batch_size!r}.")
        if self.sampling not in SAMPLINGS:
            fail(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}.")
        if self.accountant not in ACCOUNTANTS:
            fail(f"accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}.")
        if self.clipping not in CLIPPINGS:
            fail(f"clipping must be one of {CLIPPINGS}, got {self.clipping!r}.")
        if not 0 < self.target_quantile < 1:
            fail(f"target_quantile must be in (0, 1) (0.5 clips half the examples), got {self.target_quantile!r}.")
        if not (self.clip_learning_rate > 0 and math.isfinite(self.clip_learning_rate)):
            fail(f"clip_learning_rate must be positive (0.2 in Andrew et al.), got {self.clip_learning_rate!r}.")
        if self.clipped_count_stddev is not None and not self.clipped_count_stddev > 0:
            fail(f"clipped_count_stddev must be positive (default batch_size / 20), got {self.clipped_count_stddev!r}.")
        if not self.epochs > 0:
            fail(f"epochs must be positive, got {self.epochs!r}.")
        if self.steps < 1:
            fail(f"{self.epochs} epochs of batch {self.batch_size} over {self.dataset_size} records make no full "
                 "step: raise epochs or lower batch_size.")
        if not (self.l2_norm_clip > 0 and math.isfinite(self.l2_norm_clip)):
            fail(f"l2_norm_clip must be a positive number, got {self.l2_norm_clip!r}; 1.0 is a common start.")
        if self.noise_multiplier is None and self.target_epsilon is None:
            fail("give noise_multiplier (the noise std divided by the clip norm) or target_epsilon (the noise is "
                 "then calibrated to reach it), or both (training then stops when the target is reached).")
        if self.noise_multiplier is not None and not (self.noise_multiplier >= 0 and math.isfinite(self.noise_multiplier)):
            fail(f"noise_multiplier must be >= 0, got {self.noise_multiplier!r}.")
        if self.target_epsilon is not None and not (self.target_epsilon > 0 and math.isfinite(self.target_epsilon)):
            fail(f"target_epsilon must be a positive number, got {self.target_epsilon!r}.")
        release = self.release_noise_multiplier
        if release is not None and not (release >= 0 and math.isfinite(release)):
            fail(f"release_noise_multiplier must be >= 0, got {release!r}.")
        if self.delta is not None and not 0 < self.delta < 1 / self.dataset_size:
            fail(f"delta must be in (0, 1/N) = (0, {1 / self.dataset_size:.3g}) for N={self.dataset_size} records "
                 f"(a larger delta allows leaking a whole record); got {self.delta!r}. "
                 + (f"Leave it unset for the default {DEFAULT_DELTA:.0e}."
                    if self.dataset_size <= LARGEST_FOR_DEFAULT_DELTA else ""))

    @property
    def sampling_probability(self) -> float:
        return self.batch_size / self.dataset_size

    @property
    def count_stddev(self) -> Optional[float]:
        """sigma_b, the stddev of the noise on the count of unclipped examples (adaptive clipping only)."""
        if self.clipping != "adaptive":
            return None
        return self.clipped_count_stddev if self.clipped_count_stddev is not None else self.batch_size / 20

    @property
    def effective_noise_multiplier(self) -> Optional[float]:
        """The noise multiplier applied to the clipped sum: z itself, or z_sum with adaptive clipping."""
        if self.noise_multiplier is None:
            return None
        if self.clipping != "adaptive":
            return self.noise_multiplier
        return accounting.sum_noise_multiplier(self.noise_multiplier, self.count_stddev)

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.dataset_size, self.batch_size, self.sampling)

    @property
    def steps(self) -> int:
        return int(math.floor(self.epochs * self.steps_per_epoch))

    def resolved(self) -> "PrivacySettings":
        """These settings with `delta` filled in and `noise_multiplier` calibrated from `target_epsilon` if needed."""
        delta = self.delta if self.delta is not None else default_delta(self.dataset_size)
        noise, steps, reason = self.noise_multiplier, self.steps, ""
        if noise is None:
            try:
                noise = accounting.calibrate_noise_multiplier(
                    self.target_epsilon, delta, self.sampling_probability, steps, self.accountant,
                    self.release_noise_multiplier)
            except Exception as error:  # dp_accounting raises several types when no bracket holds the target
                reason = f" ({error})"
        elif self.target_epsilon is not None:
            steps = 1  # noise given: the target must allow at least one step
        if self.target_epsilon is not None:
            reached = (math.inf if noise is None else
                       accounting.compute_epsilon(noise, self.sampling_probability, steps, delta, self.accountant,
                                                  self.release_noise_multiplier))
            if reached > self.target_epsilon:
                what = (f"no noise multiplier reaches it in {steps} steps" if self.noise_multiplier is None else
                        f"noise_multiplier {noise} spends epsilon {reached:.4g} in its first step")
                raise PrivacySettingsError(
                    f"target_epsilon={self.target_epsilon} cannot be reached with delta={delta:.3g} at sampling "
                    f"probability {self.sampling_probability:.4g}: {what}{reason}. Raise "
                    "target_epsilon or delta, train fewer epochs, use a smaller batch size or more noise.")
        if self.clipping == "adaptive" and not noise < 2 * self.count_stddev:
            raise PrivacySettingsError(
                f"adaptive clipping needs noise_multiplier < 2 * clipped_count_stddev, but {noise:.4g} >= "
                f"2 * {self.count_stddev:.4g}: the count of unclipped examples would use up the whole budget. Raise "
                "clipped_count_stddev (or the batch size: its default is batch_size / 20), or use clipping='fixed'.")
        return dataclasses.replace(self, delta=delta, noise_multiplier=noise)

    @property
    def is_resolved(self) -> bool:
        return self.noise_multiplier is not None and self.delta is not None
