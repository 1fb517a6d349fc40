"""model.evaluate.calibration against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from model.evaluate.calibration import confident_wrong_share, expected_calibration_error


def test_perfectly_calibrated_answers_have_no_error() -> None:
    # 10 answers at 0.8, 8 right; 10 at 0.3, 3 right
    confidence = np.array([0.8] * 10 + [0.3] * 10)
    correct = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 7, dtype=bool)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)


def test_overconfidence_is_the_gap_weighted_by_the_bins_share() -> None:
    # all at 0.99 (one bin), half right: |0.5 - 0.99| = 0.49
    assert expected_calibration_error(np.full(8, 0.99), np.array([1, 0] * 4, dtype=bool)) == pytest.approx(0.49)
    # two bins of equal size: |1.0 - 0.95| and |0.0 - 0.55|, each weighted 1/2
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 0, 0], dtype=bool)
    assert expected_calibration_error(confidence, correct) == pytest.approx((0.05 + 0.55) / 2)


def test_bin_edges_and_empty_input() -> None:
    # 1.0 is in the last bin, 0.0 in the first; 1/15 closes the first bin
    assert expected_calibration_error(np.array([1.0]), np.array([True])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([0.0]), np.array([False])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1 / 15, 0.07]), np.array([False, False]), bins=15) == pytest.approx(
        (1 / 15 + 0.07) / 2
    )  # the two in different bins: each its own gap
    assert expected_calibration_error(np.array([]), np.array([], dtype=bool)) == 0.0


def test_confident_wrong_counts_only_wrong_answers_above_the_threshold() -> None:
    confidence = np.array([0.95, 0.95, 0.91, 0.9, 0.5])
    correct = np.array([True, False, False, False, False])
    assert confident_wrong_share(confidence, correct) == pytest.approx(2 / 5)  # 0.9 itself is not above
