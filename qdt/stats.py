"""Interval statistics over repeats and seeds: the one place qdt computes and prints a 95% interval.

Every mean reported over independent draws (shot draws in ``qdt evaluate`` and the demo, seeds
in ``qdt bench``) comes with a 95% Student-t interval from :func:`mean_interval`. With few
samples a t-interval is wide and can leave the metric's range (a rate of 0, 1, 1 over three
seeds gives about [-0.8, 2.1]), so the interval is clipped to the metric's ``bounds``:
:data:`RATE` for agreements and feasibility, :data:`NON_NEGATIVE` for latencies and gaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

Bounds = tuple[float | None, float | None]

RATE: Bounds = (0.0, 1.0)  # the range of a rate: agreements, feasibility
NON_NEGATIVE: Bounds = (0.0, None)  # latencies and gaps
T_QUANTILE = 0.975  # two-sided 95%: 2.5% in each tail


def mean_interval(values: Sequence[float], bounds: Bounds = (None, None)) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval (collapsed for a single value), the interval clipped to
    the metric's ``bounds``: with few samples a t-interval of a rate would leave [0, 1]."""
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if data.size < 2 or float(data.std(ddof=1)) == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf(T_QUANTILE, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    low, high = bounds
    lo = mean - half if low is None else max(mean - half, low)
    hi = mean + half if high is None else min(mean + half, high)
    return mean, lo, hi


def interval(values: Sequence[float], bounds: Bounds) -> dict[str, float]:
    """:func:`mean_interval` as ``{"mean", "lo95", "hi95"}`` (the form stored in JSON results)."""
    mean, lo, hi = mean_interval(values, bounds)
    return {"mean": mean, "lo95": lo, "hi95": hi}


def format_interval(
    mean: float, lo: float, hi: float, *, scale: float = 1.0, spec: str = ".2f", unit: str = ""
) -> str:
    """``mean [lo, hi]`` with each number multiplied by ``scale`` and formatted with ``spec``,
    ``unit`` after the mean; just ``mean`` when the interval collapsed (one draw, or all equal).

    >>> format_interval(0.5, 0.25, 0.75, scale=100, unit="%")
    '50.00% [25.00, 75.00]'
    """
    text = f"{scale * mean:{spec}}{unit}"
    return text if lo == hi else f"{text} [{scale * lo:{spec}}, {scale * hi:{spec}}]"


# ---- aggregates across seeds (and tasks), as rliable computes them -------------------------
BOOTSTRAP_SAMPLES = 2_000
"""Stratified bootstrap resamples behind an IQM interval: the 2.5/97.5% quantiles of 2,000
resamples move by well under a tenth of the interval's width from one generator seed to another."""


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the values left after dropping the lowest and the highest
    ⌊n/4⌋ (``scipy.stats.trim_mean(values, 0.25)``, which rliable's ``aggregate_iqm`` computes).
    Less swayed by one bad seed than the mean, less noisy than the median (Agarwal et al., "Deep
    RL at the Edge of the Statistical Precipice", NeurIPS 2021)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("the IQM of no values")
    return float(stats.trim_mean(data, 0.25))


def iqm_interval(
    runs_by_task: Sequence[Sequence[float]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """IQM over every run of every task, with a stratified-bootstrap percentile interval.

    ``runs_by_task[t]`` holds task t's per-seed scores. Each bootstrap resample draws, within
    every task separately, as many runs with replacement as the task has (the strata), and takes
    the IQM of all drawn runs; the interval is the (1 ± confidence)/2 quantiles of those IQMs.
    This is rliable's ``get_interval_estimates`` with ``StratifiedBootstrap`` for one algorithm.
    """
    tasks = [np.asarray(runs, dtype=np.float64).ravel() for runs in runs_by_task]
    tasks = [runs for runs in tasks if runs.size]
    if not tasks:
        raise ValueError("the IQM of no runs")
    point = iqm(np.concatenate(tasks))
    rng = np.random.default_rng(seed)
    resampled = np.empty(samples)
    for b in range(samples):
        drawn = [runs[rng.integers(0, runs.size, size=runs.size)] for runs in tasks]
        resampled[b] = iqm(np.concatenate(drawn))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return point, float(low), float(high)
