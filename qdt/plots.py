"""Figures: the one place that picks matplotlib's backend, and the plots more than one module draws.

qdt only writes PNG files, from training (``reward.png``), sweeps, benchmarks and the demo, often
on machines without a display and in Ray workers: :func:`pyplot` selects the non-interactive
``Agg`` backend before pyplot is imported, and every figure goes through it. matplotlib is
imported on the first call, not with this module, so importing qdt stays fast.

Shared figure pieces:
  * :func:`save_figure`: tight layout, PNG at 110 dpi, figure closed (no figure leaks in a sweep);
  * :func:`panel_grid`: one panel per instance, two columns, unused panels hidden;
  * :func:`smoothing_window` / :func:`moving_mean`: the moving mean of a reward curve;
  * :func:`reward_band` / :func:`plot_reward_band`: reward versus episode over seeds, the mean
    line and min-max band; :func:`reward_floor`: where a reward axis stops below;
  * :func:`plot_optimum`: the reward of the exact optimum, minus its total latency (docs/design.md §2);
  * :func:`plot_interval_line`: means with their 95% interval as a band (see :mod:`qdt.stats`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
SMOOTHING_POINTS = 40  # a reward curve is smoothed over 1/40 of its length
REWARD_LABEL = "reward (episode mean, moving average)"


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Lay the figure out tightly, write it as a PNG at :data:`DPI`, and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)


def panel_grid(count: int, panel_width: float, panel_height: float = 4.2) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` panels in at most two columns; returns the first ``count`` axes,
    row by row, and hides the spare panel of an odd count."""
    columns = min(count, 2)
    rows = -(-count // columns)
    fig, axes = pyplot().subplots(
        rows, columns, figsize=(panel_width * columns, panel_height * rows), squeeze=False
    )
    flat = list(axes.flat)
    for spare in flat[count:]:
        spare.set_visible(False)
    return fig, flat[:count]


def smoothing_window(length: int, points: int = SMOOTHING_POINTS) -> int:
    """The moving-mean window for a curve of ``length`` episodes: ``length // points``, at least 1."""
    return max(1, length // points)


def moving_mean(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Means of every ``window`` consecutive values (``len(values) - window + 1`` of them); the
    k-th mean ends at episode ``window + k`` (episodes counted from 1)."""
    return np.convolve(np.asarray(values, dtype=np.float64), np.ones(window) / window, mode="valid")


@dataclass(frozen=True)
class RewardBand:
    """Reward curves of several seeds, cut to the shortest, and their moving means."""

    runs: np.ndarray  # [seeds, episodes]: reward per episode
    smooth: np.ndarray  # [seeds, points]: moving means (see moving_mean)
    episodes: np.ndarray  # [points]: the episode (from 1) at which each moving window ends

    @property
    def mean(self) -> np.ndarray:
        """The mean over seeds of the moving means: the line of the plot."""
        return self.smooth.mean(axis=0)


def reward_band(curves: Sequence[Sequence[float]]) -> RewardBand:
    """The band of ``curves`` (one reward list per seed, at least one episode each)."""
    length = min(len(curve) for curve in curves)
    runs = np.array([curve[:length] for curve in curves], dtype=np.float64)
    window = smoothing_window(length)
    smooth = np.array([moving_mean(run, window) for run in runs])
    return RewardBand(runs=runs, smooth=smooth, episodes=np.arange(window, length + 1))


def plot_reward_band(
    ax: Axes,
    curves: Sequence[Sequence[float]],
    label: str,
    *,
    line_width: float = 1.5,
    band_alpha: float = 0.15,
) -> RewardBand:
    """Draw reward versus episode over seeds: the mean of the moving means as a line, their
    min-max over seeds as a band in the line's colour. Returns the band's data."""
    band = reward_band(curves)
    (line,) = ax.plot(band.episodes, band.mean, lw=line_width, label=label)
    low, high = band.smooth.min(axis=0), band.smooth.max(axis=0)
    ax.fill_between(band.episodes, low, high, alpha=band_alpha, facecolor=line.get_color())
    return band


def reward_floor(lowest: float, best: float) -> float:
    """The bottom of a reward axis: early penalised episodes can sit far below the learned
    reward, so the axis stops at 4 times the best reward's size (plus 1) below zero."""
    return max(lowest, -4 * abs(best) - 1)


def plot_optimum(ax: Axes, total_latency_s: float) -> None:
    """The reward of the exact optimum (minus its total latency) as a dashed black line."""
    ax.axhline(-total_latency_s, color="k", ls="--", lw=1, label="optimum")


def plot_interval_line(
    ax: Axes,
    x: Sequence[float],
    intervals: Sequence[tuple[float, float, float]],
    style: str,
    label: str,
    *,
    band_alpha: float,
    scale: float = 100.0,
    **line: Any,
) -> None:
    """Means as a line with markers and their intervals as a band in the line's colour.

    ``intervals`` holds one ``(mean, lo, hi)`` per x (NaN where there is no value), each
    multiplied by ``scale`` (percent by default); ``line`` goes to ``ax.plot`` (``ms=3``...).
    """
    values = scale * np.asarray(intervals, dtype=np.float64).reshape(-1, 3)
    drawn = ax.plot(x, values[:, 0], style, marker="o", label=label, **line)
    ax.fill_between(x, values[:, 1], values[:, 2], alpha=band_alpha, color=drawn[0].get_color())
