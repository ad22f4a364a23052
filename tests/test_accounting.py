"""Epsilon against dp_accounting computed independently, noise calibration, and the settings' validation."""
import math
import re

import dp_accounting
import pytest

import tfdpgen
from tfdpgen._compat import tf_privacy
from tfdpgen.privacy import accounting
from tfdpgen.privacy.report import epochs_for_steps, privacy_report, privacy_statement
from tfdpgen.privacy.settings import PrivacySettings, PrivacySettingsError, default_delta
from toys import requires_tf_privacy


def independent_epsilon(noise_multiplier, q, steps, delta, pld=False):
    accountant = dp_accounting.pld.PLDAccountant() if pld else dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier))
    accountant.compose(event, steps)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("target, n, batch, epochs", [(3.0, 1797, 64, 30), (1.0, 8000, 256, 50), (8.0, 40000, 512, 5)])
def test_calibration_reaches_target_within_one_percent_without_exceeding(target, n, batch, epochs):
    s = tfdpgen.PrivacySettings(dataset_size=n, batch_size=batch, epochs=epochs, target_epsilon=target).resolved()
    spent = independent_epsilon(s.noise_multiplier, batch / n, s.steps, s.delta)
    assert 0.99 * target <= spent <= target, (s.noise_multiplier, spent)


def test_calibration_with_pld():
    s = tfdpgen.PrivacySettings(dataset_size=8000, batch_size=256, epochs=3, target_epsilon=2.0, accountant="pld")
    s = s.resolved()
    spent = independent_epsilon(s.noise_multiplier, 256 / 8000, s.steps, s.delta, pld=True)
    assert 0.99 * 2.0 <= spent <= 2.0


def test_report_matches_independent_accounting():
    """With or without TF Privacy (Python >= 3.12 has none): the report's epsilon is dp_accounting's for its
    recorded noise, sampling rate and steps."""
    s = tfdpgen.PrivacySettings(dataset_size=8000, batch_size=256, epochs=50, noise_multiplier=1.5).resolved()
    report = privacy_report(s, s.steps)
    assert report["steps"] == 50 * round(8000 / 256)
    expected = independent_epsilon(report["noise_multiplier"], report["sampling_probability"], report["steps"],
                                   report["delta"])
    assert report["epsilon"] == pytest.approx(expected, rel=1e-9)


@requires_tf_privacy
def test_report_matches_tf_privacy_statement():
    s = tfdpgen.PrivacySettings(dataset_size=8000, batch_size=256, epochs=50, noise_multiplier=1.5).resolved()
    report = privacy_report(s, s.steps)
    compute_dp_sgd_privacy_lib = tf_privacy("privacy.analysis.compute_dp_sgd_privacy_lib", "this test")
    statement = compute_dp_sgd_privacy_lib.compute_dp_sgd_privacy_statement(
        number_of_examples=8000, batch_size=256, num_epochs=epochs_for_steps(report["steps"], 256 / 8000),
        noise_multiplier=1.5, delta=report["delta"], used_microbatching=False)
    poisson = float(re.search(r"Poisson sampling \(\*\):\s+([\d.]+)", statement).group(1))
    assert poisson == pytest.approx(report["epsilon"], abs=1e-3)
    assert statement == privacy_statement(s, report["steps"])


def test_shuffle_report_carries_the_caveat_and_the_unamplified_bound():
    s = tfdpgen.PrivacySettings(dataset_size=1000, batch_size=100, epochs=4, noise_multiplier=1.0,
                                sampling="shuffle").resolved()
    report = privacy_report(s, s.steps)
    assert report["sampling"] == "shuffle" and "not Poisson" in report["caveat"]
    assert report["epsilon_without_sampling_amplification"] == pytest.approx(
        independent_epsilon(1.0, 1.0, 4, s.delta), rel=1e-9)
    assert report["epsilon_without_sampling_amplification"] > report["epsilon"]


def test_zero_noise_reports_no_guarantee():
    s = tfdpgen.PrivacySettings(dataset_size=100, batch_size=10, epochs=1, noise_multiplier=0.0).resolved()
    report = privacy_report(s, 3)
    assert report["epsilon"] is None and "no differential privacy" in report["note"]


def test_epsilon_grows_with_steps_and_max_steps_is_tight():
    z, q, delta = 1.1, 0.02, 1e-5
    k = accounting.max_steps_within(2.0, z, q, delta)
    assert accounting.compute_epsilon(z, q, k, delta) <= 2.0 < accounting.compute_epsilon(z, q, k + 1, delta)


def test_default_delta_is_one_figure_below_one_over_n_and_larger_data_must_give_one():
    """Bug caught (found by the privacy review): a default delta that is a power of ten tied to the exact private
    size, which made the noise a step function of it (1,000 records and 1,001 gave different noise)."""
    assert {default_delta(n) for n in (10, 455, 1000, 1001, 1797, 8000, 40000, 60000, 99_999)} == {1e-5}
    assert 1e-5 < 1 / 99_999
    with pytest.raises(PrivacySettingsError, match="give --delta below 1/N, for instance 1e-07"):
        default_delta(10 ** 6)
    with pytest.raises(PrivacySettingsError, match="give --delta"):
        PrivacySettings(dataset_size=10 ** 6, batch_size=1000, epochs=1, target_epsilon=1.0).resolved()


@pytest.mark.parametrize("kwargs, message", [
    (dict(l2_norm_clip=0.0, noise_multiplier=1.0), "l2_norm_clip must be a positive"),
    (dict(l2_norm_clip=-1.0, noise_multiplier=1.0), "l2_norm_clip must be a positive"),
    (dict(noise_multiplier=-0.5), "noise_multiplier must be >= 0"),
    (dict(target_epsilon=0.0), "target_epsilon must be a positive"),
    (dict(target_epsilon=-1.0), "target_epsilon must be a positive"),
    (dict(target_epsilon=math.nan), "target_epsilon must be a positive"),
    (dict(noise_multiplier=1.0, delta=1e-3), r"delta must be in \(0, 1/N\)"),
    (dict(noise_multiplier=1.0, delta=0.0), r"delta must be in \(0, 1/N\)"),
    (dict(), "give noise_multiplier"),
    (dict(noise_multiplier=1.0, sampling="random"), "sampling must be one of"),
    (dict(noise_multiplier=1.0, accountant="gdp"), "accountant must be one of"),
])
def test_bad_settings_fail_with_what_to_do(kwargs, message):
    with pytest.raises(PrivacySettingsError, match=message):
        tfdpgen.PrivacySettings(dataset_size=1000, batch_size=50, epochs=2, **kwargs)


def test_bad_sizes_fail():
    with pytest.raises(PrivacySettingsError, match="empty"):
        tfdpgen.PrivacySettings(dataset_size=0, batch_size=50, epochs=2, noise_multiplier=1.0)
    with pytest.raises(PrivacySettingsError, match="batch_size must be"):
        tfdpgen.PrivacySettings(dataset_size=10, batch_size=50, epochs=2, noise_multiplier=1.0)


def test_unreachable_target_fails_before_training():
    with pytest.raises(PrivacySettingsError, match="cannot be reached"):
        tfdpgen.PrivacySettings(dataset_size=1000, batch_size=500, epochs=1, noise_multiplier=0.3,
                                target_epsilon=0.01).resolved()


def test_dropped_renyi_orders_are_not_printed_and_other_accounting_warnings_are(capsys):
    """Bug caught: with dp-accounting 0.6 (Colab's Python 3.13) every command printed dozens of "WARNING:absl:
    _compute_log_a_frac failed to converge ... Excluding this order" lines after the noise was calibrated, because the
    calibration's quieting restored absl's verbosity to WARNING. The line is dp-accounting's own, logged as it logs it."""
    import logging

    from absl import logging as absl_logging

    import tfdpgen.privacy.ledger  # noqa: F401  (installs the filter)

    handler = logging.StreamHandler()  # where Python's last-resort handler would print, made explicit
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(handler)
    level = absl_logger.level
    absl_logger.setLevel(logging.WARNING)  # a command run in this process may have set ERROR
    try:
        absl_logging.warning("_compute_log_a_frac failed to converge after %d iterations with q=%f, sigma=%f, "
                             "alpha=%f. Excluding this order from the epsilon computation.", 1000, 0.178, 1.43, 1.1)
        absl_logging.warning("an accounting warning a user must read")
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.setLevel(level)
    err = capsys.readouterr().err
    assert "failed to converge" not in err
    assert "an accounting warning a user must read" in err
