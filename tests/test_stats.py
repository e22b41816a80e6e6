"""The statistics module against values computed by hand from their definitions."""

from __future__ import annotations

import math

import pytest

from lib.report import stats
from lib.report.stats import exact_rate, format_p, mcnemar


def test_clopper_pearson_matches_its_closed_forms_at_the_edges():
    # k = 0: the upper end solves (1 - p)^n = 0.025; k = n: the lower end solves p^n = 0.025.
    assert math.isclose(exact_rate(0, 10).high, 1 - 0.025 ** (1 / 10), rel_tol=1e-9)
    assert exact_rate(0, 10).low == 0.0
    assert math.isclose(exact_rate(10, 10).low, 0.025 ** (1 / 10), rel_tol=1e-9)


def test_clopper_pearson_textbook_value():
    # 23/100: the exact interval runs from the 0.025 quantile of Beta(23, 78) to the 0.975
    # quantile of Beta(24, 77): 0.151732 to 0.324859.
    rate = exact_rate(23, 100)
    assert math.isclose(rate.low, 0.151732, abs_tol=5e-7)
    assert math.isclose(rate.high, 0.324859, abs_tol=5e-7)
    assert rate.text() == "23/100 = 23.0 % (95 % CI 15.2-32.5 %)"


def test_rates_reject_impossible_counts():
    for k, n in ((5, 4), (-1, 4), (1.5, 4)):
        with pytest.raises(ValueError, match="0 <= k <= n"):
            exact_rate(k, n)


def test_mcnemar_uses_only_the_discordant_people():
    # 2 against 8 discordant: two-sided exact p = 2 * (1 + 10 + 45) / 2**10 = 0.109375.
    a = [True] * 2 + [False] * 8 + [True] * 30 + [False] * 60
    b = [False] * 2 + [True] * 8 + [True] * 30 + [False] * 60
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b) == (2, 8)
    assert math.isclose(result.p_value, 0.109375, rel_tol=1e-12)
    assert result.verdict == "not separated"
    assert mcnemar([True] * 9, [False] * 9).verdict == "above"
    assert mcnemar([False] * 9, [True] * 9).verdict == "below"
    assert mcnemar([True, False], [True, False]).p_value == 1.0


def test_mcnemar_needs_the_same_people():
    with pytest.raises(ValueError, match="same people"):
        mcnemar([True], [True, False])


def test_p_values_print_as_readers_expect():
    assert format_p(0.0001) == "p < 0.001" and format_p(0.0078125) == "p = 0.0078"
    assert format_p(0.5) == "p = 0.50"


def test_fisher_matches_the_tea_tasting_experiment_and_states_its_direction():
    from lib.report.stats import fisher

    tea = fisher(3, 4, 1, 4)  # Fisher's lady tasting tea: 3 of 4 cups right each way
    assert tea.p_value == pytest.approx(34 / 70, abs=1e-12) and tea.verdict == "not separated"
    clear = fisher(40, 50, 5, 50)
    assert clear.p_value < 1e-10 and clear.verdict == "above" and clear.relation == "above"
    assert fisher(5, 50, 40, 50).verdict == "below"
    assert fisher(0, 0, 3, 10).p_value == 1.0
    assert clear.a.k == 40 and clear.b.n == 50


def test_separation_matches_the_textbook_mann_whitney_example():
    # Nine values, five in one group: U = 17 of 5 x 4 = 20 pairs, exact two-sided p = 0.111
    # (scipy's documented example of `mannwhitneyu`).
    scores = [19, 22, 16, 29, 24, 20, 11, 17, 12]
    right = [True] * 5 + [False] * 4
    found = stats.separation(scores, right)
    assert found.auroc == pytest.approx(17 / 20)
    assert found.p_value == pytest.approx(0.1111, abs=1e-4)
    assert found.verdict == "cannot tell from chance"
    assert found.text() == "0.85 (p = 0.11)"


def test_one_right_answer_above_most_wrong_ones_is_not_evidence_of_separation():
    # One right answer more confident than 91 of 99 wrong ones: AUROC 0.92, yet under chance
    # its rank is uniform, so a rank this high or higher has p = 9/100 each side.
    wrong = [i / 100 for i in range(99)]
    found = stats.separation([0.905] + wrong, [True] + [False] * 99)
    assert found.auroc == pytest.approx(91 / 99)
    assert found.p_value == pytest.approx(2 * 9 / 100) and found.verdict == "cannot tell from chance"
    first = stats.separation([2.0] + wrong, [True] + [False] * 99)
    assert first.auroc == 1.0 and first.p_value == pytest.approx(2 / 100)
    many = stats.separation([0.9] * 30 + [0.1] * 70, [True] * 30 + [False] * 70)
    assert many.verdict == "separates" and many.p_value < 1e-10
    worse = stats.separation([0.1] * 30 + [0.9] * 70, [True] * 30 + [False] * 70)
    assert worse.verdict == "worse than chance" and worse.auroc == 0.0
    assert stats.separation([0.5, 0.4], [False, False]).verdict == "nothing to rank"
    assert stats.separation([0.5, 0.4], [False, False]).text() == "–"


def test_poisson_binomial_matches_enumeration_of_every_outcome():
    from itertools import product

    probabilities = [0.9, 0.05, 0.5, 0.33, 0.7]
    by_count = [0.0] * 6
    for outcome in product([0, 1], repeat=5):
        by_count[sum(outcome)] += math.prod(p if o else 1 - p
                                            for p, o in zip(probabilities, outcome, strict=True))
    assert stats.poisson_binomial(probabilities) == pytest.approx(by_count, abs=1e-15)


@pytest.mark.parametrize(("k", "n", "p"), [(0, 20, 0.3), (3, 20, 0.3), (6, 20, 0.3),
                                           (11, 20, 0.3), (41, 500, 0.12), (0, 1, 0.5)])
def test_calibration_test_with_equal_confidences_is_the_exact_binomial_test(k, n, p):
    from scipy.stats import binomtest

    found = stats.calibration_in_the_large([p] * n, [True] * k + [False] * (n - k))
    assert found.observed == k and found.expected == pytest.approx(n * p)
    assert found.p_value == pytest.approx(binomtest(k, n, p).pvalue, rel=1e-9)


def test_calibration_verdict_names_the_direction_only_beyond_chance():
    sure = [0.9] * 50
    assert stats.calibration_in_the_large(sure, [True] * 30 + [False] * 20).verdict == "overstates"
    assert stats.calibration_in_the_large([0.1] * 50, [True] * 20 + [False] * 30).verdict == (
        "understates")
    assert stats.calibration_in_the_large(sure, [True] * 45 + [False] * 5).verdict == "consistent"
    assert stats.calibration_in_the_large(sure, [True] * 30 + [False] * 20).text().startswith(
        "30 right where the confidences expect 45.0, p ")
