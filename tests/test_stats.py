"""The report's seed statistics: the paired bootstrap against a hand-computed case and the unpaired one."""

import numpy as np
import pytest

from geobench.report.stats import bootstrap_diff_ci, paired_diff_ci, paired_ratio_ci


def test_paired_bootstrap_on_a_hand_computed_case():
    """Seed differences 0.1, 0, 0.3: resampling 3 seeds jointly, the mean is 0 only when every draw is seed 1
    (probability 1/27 = 3.7% > 2.5%) and 0.3 only when every draw is seed 2 (also 1/27), so the 95% percentile
    CI is exactly [0, 0.3] around the mean 0.4/3."""
    treated, baseline = np.array([0.5, 0.6, 0.9]), np.array([0.4, 0.6, 0.6])
    mean, low, high = paired_diff_ci(treated, baseline)
    assert mean == pytest.approx(0.4 / 3) and low == pytest.approx(0.0) and high == pytest.approx(0.3)
    ratio, low, high = paired_ratio_ci(treated, baseline)
    assert ratio == pytest.approx(2.0 / 1.6 - 1) and low == pytest.approx(0.0) and high == pytest.approx(0.5)


def test_paired_bootstrap_cancels_what_the_seeds_share_and_the_unpaired_one_does_not():
    shared = np.array([0.2, 0.5, 0.8, 0.3, 0.6])  # seed k's prompts, the same for both arms
    mean, low, high = paired_diff_ci(shared + 0.01, shared)
    assert (mean, low, high) == pytest.approx((0.01, 0.01, 0.01))
    _, low_unpaired, high_unpaired = bootstrap_diff_ci(shared + 0.01, shared)
    assert low_unpaired < 0 < high_unpaired  # the same samples, unpaired: unresolved
    with pytest.raises(ValueError, match="one value per seed"):
        paired_diff_ci(shared, shared[:4])
