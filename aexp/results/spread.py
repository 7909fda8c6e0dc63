"""How a metric spreads over the runs of one configuration (its seeds): n, mean, standard
deviation and a 95 % confidence interval of the mean; and the gap between two configurations.

    s = spread([0.21, 0.23, 0.22])
    s.n, s.mean, s.std           3, 0.22, 0.01          (std: the sample standard deviation, n - 1)
    s.ci_low, s.ci_high          mean -/+ t(0.975, n - 1) * std / sqrt(n)   (Student's t)
    g = gap(a, b)                b.mean - a.mean, with Welch's 95 % interval of that difference

The interval is Student's t interval, the one researchers expect for a handful of seeds (with
3 seeds the normal interval's 1.96 would be 2.2 times too narrow: t(0.975, 2) = 4.30). It
assumes the runs' values are independent draws around the configuration's mean; with n = 1
there is no spread (std and interval are None). The gap's interval is Welch's (unequal
variances, Welch-Satterthwaite degrees of freedom). Values that are not finite numbers (NaN,
infinities, strings) are left out and counted in `left_out`.

t quantiles come from the regularized incomplete beta function (continued fraction, Numerical
Recipes 6.4), inverted by bisection: no scipy needed, exact to ~1e-13.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

CONFIDENCE = 0.95
CI_KIND = "t"  # Student's t interval of the mean (Welch's for a difference)


@dataclass(frozen=True)
class Spread:
    """n, mean, sample standard deviation and the 95 % t interval of the mean of some values
    (None where there are too few values); `left_out`: values that were not finite numbers."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    low: float | None = None  # the smallest value
    high: float | None = None  # the largest value
    left_out: int = 0

    @property
    def half_width(self) -> float | None:
        """The interval's half width (mean +- this)."""
        return None if self.ci_high is None or self.mean is None else self.ci_high - self.mean

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "ci95": None if self.ci_low is None else [self.ci_low, self.ci_high],
            "min": self.low,
            "max": self.high,
            "left_out": self.left_out,
        }


def finite(value: Any) -> bool:
    """Whether `value` is a finite number (booleans are not numbers here)."""
    return type(value) in (int, float) and math.isfinite(value)


def spread(values: Iterable[Any]) -> Spread:
    """The Spread of the finite numbers among `values`."""
    numbers: list[float] = []
    left_out = 0
    for value in values:
        if finite(value):
            numbers.append(float(value))
        else:
            left_out += 1
    n = len(numbers)
    if n == 0:
        return Spread(0, None, None, None, None, left_out=left_out)
    mean = math.fsum(numbers) / n
    low, high = min(numbers), max(numbers)
    if n == 1:
        return Spread(1, mean, None, None, None, low, high, left_out)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in numbers) / (n - 1))
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, mean - half, mean + half, low, high, left_out)


@dataclass(frozen=True)
class Gap:
    """`b.mean - a.mean` and Welch's 95 % interval of it (None without two values each)."""

    diff: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    df: float | None = None

    @property
    def resolved(self) -> bool | None:
        """Whether the interval excludes 0 (the difference is resolved at 95 %); None without
        an interval."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low > 0 or self.ci_high < 0

    def as_json(self) -> dict[str, Any]:
        return {
            "diff": self.diff,
            "ci95": None if self.ci_low is None else [self.ci_low, self.ci_high],
            "df": self.df,
            "resolved": self.resolved,
        }


def gap(a: Spread, b: Spread) -> Gap:
    """The difference `b - a` of two configurations' means, with Welch's interval."""
    if a.mean is None or b.mean is None:
        return Gap(None)
    diff = b.mean - a.mean
    if a.std is None or b.std is None:
        return Gap(diff)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Gap(diff, diff, diff, None)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = t_quantile(0.5 + CONFIDENCE / 2, df) * se
    return Gap(diff, diff - half, diff + half, df)


# -- Student's t quantiles ----------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t distribution with `df` degrees of freedom (p in (0.5, 1)).

    P(T > t) = I_{df / (df + t^2)}(df / 2, 1 / 2) / 2 is solved for x = df / (df + t^2) by
    bisection (I is increasing in x). Raises ValueError outside the domain.
    """
    if not 0.5 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, not p={p}, df={df}")
    tail = 2.0 * (1.0 - p)  # I_x(df/2, 1/2) at the quantile
    low, high = 0.0, 1.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if incomplete_beta(df / 2.0, 0.5, mid) < tail:
            low = mid
        else:
            high = mid
        if high - low <= 1e-17 * max(mid, 1e-300):
            break
    x = (low + high) / 2.0
    return math.sqrt(df * (1.0 - x) / x)


__all__ = [
    "CI_KIND",
    "CONFIDENCE",
    "Gap",
    "Spread",
    "finite",
    "gap",
    "incomplete_beta",
    "spread",
    "t_quantile",
]
