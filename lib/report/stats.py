"""The statistics the book's comparisons rest on, computed by scipy.

Every configuration answers the same dev people, so two configurations are compared
person by person: only the people one gets right and the other wrong (the discordant
pairs) carry information, and McNemar's exact test asks whether they split evenly.
A single rate gets an exact (Clopper-Pearson) interval, which never leaves [0, 1] and
stays honest for the handful of hits a small model scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

CONFIDENCE = 0.95
# The rule every verdict sentence follows: one rate is "above" another only when McNemar's
# exact test on the same people rejects an even split of the discordant pairs at this level.
ALPHA = 0.05


@dataclass(frozen=True)
class Rate:
    """k successes of n, with its exact interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def text(self, digits: int = 1) -> str:
        """'23/500 = 4.6 % (95 % CI 2.9-6.8 %)'."""
        if not self.n:
            return "no questions"
        return (f"{self.k}/{self.n} = {100 * self.value:.{digits}f} % "
                f"({100 * CONFIDENCE:.0f} % CI {100 * self.low:.{digits}f}-"
                f"{100 * self.high:.{digits}f} %)")

    def cell(self, digits: int = 1) -> str:
        """'23/500 = 4.6 % (2.9-6.8)': `text` for a table cell whose header names the interval."""
        if not self.n:
            return "n/a"
        return (f"{self.k}/{self.n} = {100 * self.value:.{digits}f} % "
                f"({100 * self.low:.{digits}f}-{100 * self.high:.{digits}f})")


def exact_rate(k: int, n: int, confidence: float = CONFIDENCE) -> Rate:
    """A rate with its Clopper-Pearson interval."""
    if not (isinstance(k, int) and isinstance(n, int)) or n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k!r}, n={n!r}")
    if n == 0:
        return Rate(0, 0, float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return Rate(k, n, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Paired:
    """Two configurations scored on the same people."""

    a_correct: int
    b_correct: int
    n: int
    only_a: int  # people a answers right and b wrong
    only_b: int
    p_value: float  # McNemar's exact test, two-sided

    @property
    def verdict(self) -> str:
        """'above', 'below' or 'not separated' for a against b, by the rule `ALPHA`."""
        if self.p_value >= ALPHA or self.only_a == self.only_b:
            return "not separated"
        return "above" if self.only_a > self.only_b else "below"

    @property
    def relation(self) -> str:
        """The verdict as a relation to write before the other's name: 'above', 'below' or
        'not separated from'."""
        return "not separated from" if self.verdict == "not separated" else self.verdict


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> Paired:
    """McNemar's exact test on two right/wrong sequences over the same people, in one order."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same people: {len(a)} against {len(b)}")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return Paired(int(sum(map(bool, a))), int(sum(map(bool, b))), len(a), only_a, only_b, p)


def against_rate(k: int, n: int, rate: float) -> float:
    """Two-sided exact binomial p-value of k hits in n trials against a known `rate` (used
    where the rate is a fixed population's, such as the share of the training answers that
    are one of a few places); 1.0 with no trials."""
    return 1.0 if n == 0 else float(binomtest(k, n, rate).pvalue)


def format_p(p: float) -> str:
    """A p-value as a reader wants it: 'p = 0.0078', 'p = 0.50', tiny ones as 'p < 0.001'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


@dataclass(frozen=True)
class Unpaired:
    """Two rates over different people (no pairing possible), compared by Fisher's exact test."""

    a: Rate
    b: Rate
    p_value: float  # two-sided

    @property
    def verdict(self) -> str:
        """'above', 'below' or 'not separated' for a against b, by the rule `ALPHA`."""
        if self.p_value >= ALPHA or self.a.value == self.b.value:
            return "not separated"
        return "above" if self.a.value > self.b.value else "below"

    @property
    def relation(self) -> str:
        return "not separated from" if self.verdict == "not separated" else self.verdict


def fisher(a_hits: int, a_n: int, b_hits: int, b_n: int) -> Unpaired:
    """Fisher's exact test of two rates over different people: used where no person is in
    both groups (people a model read against people it never read), never for paired data."""
    from scipy.stats import fisher_exact

    table = [[a_hits, a_n - a_hits], [b_hits, b_n - b_hits]]
    p = 1.0 if min(a_n, b_n) == 0 else float(fisher_exact(table).pvalue)
    return Unpaired(exact_rate(a_hits, a_n), exact_rate(b_hits, b_n), p)


@dataclass(frozen=True)
class Separation:
    """How well a score ranks right answers above wrong ones (AUROC), with the Mann-Whitney
    test of "no better than chance". Unlike a bootstrap interval, the test stays honest with
    one or two right answers: a single right answer's rank among the wrong ones is, under
    chance, uniform, so even a high AUROC from it is not evidence."""

    auroc: float
    p_value: float  # two-sided; nan when either group is empty
    right: int
    wrong: int

    @property
    def verdict(self) -> str:
        if self.p_value != self.p_value:
            return "nothing to rank"
        if self.p_value >= ALPHA:
            return "cannot tell from chance"
        return "separates" if self.auroc > 0.5 else "worse than chance"

    def text(self) -> str:
        """'0.67 (p = 0.16)': the AUROC with the test's p-value."""
        if self.p_value != self.p_value:
            return "–"
        return f"{self.auroc:.2f} ({format_p(self.p_value)})"

    def prose(self) -> str:
        """'0.71 with Mann-Whitney p < 0.001': the same for a sentence, where it must still
        read after per_seed_text's '(seed 0)'."""
        return f"{self.auroc:.2f} with Mann-Whitney {format_p(self.p_value)}"


def separation(scores: Sequence[float], right: Sequence[bool]) -> Separation:
    """AUROC of `scores` for telling right from wrong, tested against chance (two-sided
    Mann-Whitney U; AUROC = U / (right x wrong), ties counting half)."""
    from scipy.stats import mannwhitneyu

    pos = [s for s, ok in zip(scores, right, strict=True) if ok]
    neg = [s for s, ok in zip(scores, right, strict=True) if not ok]
    if not pos or not neg:
        return Separation(float("nan"), float("nan"), len(pos), len(neg))
    test = mannwhitneyu(pos, neg, alternative="two-sided")
    return Separation(float(test.statistic) / (len(pos) * len(neg)), float(test.pvalue),
                      len(pos), len(neg))


@dataclass(frozen=True)
class Calibration:
    """Whether the model's confidences, taken as probabilities, account for how many answers
    are right: under that hypothesis the count right is a sum of independent Bernoulli draws,
    one per answer with its confidence (Poisson-binomial), and `p_value` is the exact
    two-sided chance of a count no more likely than the one observed."""

    observed: int  # answers right
    expected: float  # the sum of the confidences
    p_value: float

    @property
    def verdict(self) -> str:
        if self.p_value >= ALPHA:
            return "consistent"
        return "overstates" if self.expected > self.observed else "understates"

    def text(self) -> str:
        """'41 right where the confidences expect 63.2, p = 0.0021'."""
        return (f"{self.observed} right where the confidences expect {self.expected:.1f}, "
                f"{format_p(self.p_value)}")


def poisson_binomial(probabilities: Sequence[float]) -> list[float]:
    """The distribution of the number of successes among independent Bernoulli draws with
    these probabilities: entry k is P(k successes), built one draw at a time."""
    pmf = np.zeros(len(probabilities) + 1)
    pmf[0] = 1.0
    for i, p in enumerate(probabilities):
        pmf[1:i + 2] = pmf[1:i + 2] * (1 - p) + pmf[:i + 1] * p
        pmf[0] *= 1 - p
    return pmf.tolist()


def calibration_in_the_large(confidences: Sequence[float], right: Sequence[bool]) -> Calibration:
    """Tests the number of right answers against the one the confidences predict (`Calibration`);
    a relative tolerance of 1e-7 counts outcomes as likely as the observed one, as scipy's
    exact binomial test does."""
    pmf = poisson_binomial([float(c) for c in confidences])
    observed = int(sum(bool(r) for r in right))
    p = sum(q for q in pmf if q <= pmf[observed] * (1 + 1e-7))
    return Calibration(observed, float(sum(float(c) for c in confidences)), min(1.0, p))
