"""The statistics of an offer experiment's report (rewards/experiments.py): pure functions, no dependencies.

- Rates (completion rate, referrers who acquired a friend): Wilson score intervals.
- K-factor (friends acquired per referrer exposed): the friends acquired are taken as a Poisson count and get
  its exact (Garwood) interval, divided by the referrers exposed. It assumes referrals arrive independently;
  a few prolific referrers make the true interval wider.
- Cost per acquired friend (yen ÷ friends): the delta method for a ratio of two means over the referrers
  (each referrer's cost and friends kept together, so the correlation between them is in the variance).
- Whether the arms differ yet: a two-proportion z-test on the completion rate of each arm against the first,
  at α = 0.05 split over the comparisons (Bonferroni).
"""
from __future__ import annotations

import math

Z95 = 1.959963984540054  # the normal quantile of 0.975
ALPHA = 0.05


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of successes/trials; None without trials."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _upper_gamma_regularised(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): the series below a + 1, the continued fraction (modified Lentz) above."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # P(a, x) by its series, then Q = 1 - P
        term = total = 1 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean)."""
    if k < 0:
        return 0.0
    return _upper_gamma_regularised(k + 1, mean)


def _solve(target: float, low: float, high: float, cdf_of: int) -> float:
    """The mean at which poisson_cdf(cdf_of, mean) = target (the CDF falls as the mean grows), by bisection."""
    for _ in range(200):
        middle = (low + high) / 2
        if poisson_cdf(cdf_of, middle) > target:
            low = middle
        else:
            high = middle
        if high - low < 1e-10 * max(1.0, high):
            break
    return (low + high) / 2


def poisson_interval(count: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The exact (Garwood) interval of a Poisson mean from one observed count."""
    high_bound = count + 20 * math.sqrt(count + 1) + 20
    upper = _solve(alpha / 2, 0.0, high_bound, count)
    lower = 0.0 if count == 0 else _solve(1 - alpha / 2, 0.0, high_bound, count - 1)
    return lower, upper


def k_factor(friends: int, referrers: int) -> tuple[float, float, float] | None:
    """(K, low, high): friends acquired per referrer exposed, with the Poisson interval; None without referrers."""
    if referrers <= 0:
        return None
    low, high = poisson_interval(friends)
    return friends / referrers, low / referrers, high / referrers


def ratio_delta(n: int, sum_k: float, sum_x: float, sum_kk: float, sum_kx: float, sum_xx: float,
                z: float = Z95) -> tuple[float, float, float] | None:
    """(R, low, high) for R = Σk / Σx over n units (referrers), by the delta method:
    Var(R) ≈ Σ(k_i − R·x_i)² / (n (n − 1) x̄²), from the sums of k², k·x and x². None when Σx = 0 or n < 2."""
    if sum_x <= 0 or n < 2:
        return None
    ratio = sum_k / sum_x
    residuals = max(0.0, sum_kk - 2 * ratio * sum_kx + ratio * ratio * sum_xx)
    mean_x = sum_x / n
    half = z * math.sqrt(residuals / (n * (n - 1) * mean_x * mean_x))
    return ratio, max(0.0, ratio - half), ratio + half


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) of the pooled two-proportion z-test of x1/n1 against x2/n2; None when it cannot be
    computed (no trials on a side, or nobody or everybody succeeded on both)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (x2 / n2 - x1 / n1) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))
