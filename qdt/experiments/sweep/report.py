"""End-of-sweep summary: a table over seeds per configuration, and the gap plot.

Cells that differ only in their seed form a group. Per group: cells finished and failed, how
many greedy placements are feasible, the gap to the exact optimum (mean, best, worst over the
feasible ones), and the mean training time.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qdt.experiments.sweep.cell import QUANTUM_ONLY
from qdt.experiments.sweep.table import STATUS_FAILED, STATUS_OK
from qdt.experiments.tables import format_table
from qdt.plots import (
    REWARD_LABEL,
    panel_grid,
    plot_optimum,
    plot_reward_band,
    reward_floor,
    save_figure,
)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
GAP_PLOT = "gap.png"
REWARD_PLOT = "rewards.png"
GROUP_AXES = ("agent", "layers", "backend", "noise", "shots")
SUMMARY_HEADER = (
    "instance",
    "configuration",
    "cells",
    "ok",
    "failed",
    "feasible",
    "gap mean %",
    "gap best %",
    "gap worst %",
    "optimum s",
    "train s (mean)",
)


def group_label(row: Mapping[str, Any], varying: Sequence[str]) -> str:
    """``quantum L=3`` or ``classical``, plus every other axis that varies in the sweep."""
    parts = ["classical" if row.get("agent") == "classical" else f"quantum L={row.get('layers')}"]
    for key in varying:
        if key in ("agent", "layers") or not _applies(row, key):
            continue
        parts.append(f"{key}={'-' if row.get(key) is None else row.get(key)}")
    return " ".join(parts)


def _applies(row: Mapping[str, Any], key: str) -> bool:
    return not (row.get("agent") == "classical" and key in QUANTUM_ONLY)


def summary_varying(rows: Sequence[Mapping[str, Any]], extra_axes: Sequence[str] = ()) -> list[str]:
    """The axes (seed aside) whose value differs between the cells they apply to."""
    keys = [*GROUP_AXES, *extra_axes]
    return [k for k in keys if len({repr(row.get(k)) for row in rows if _applies(row, k)}) > 1]


def summarize(rows: Sequence[Mapping[str, Any]], extra_axes: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One record per (instance, configuration) over seeds, in first-seen order."""
    varying = summary_varying(rows, extra_axes)
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row.get("instance")), group_label(row, varying)), []).append(row)
    out = []
    for (instance, label), members in groups.items():
        ok = [r for r in members if r.get("status") == STATUS_OK]
        gaps = [float(r["gap"]) for r in ok if r.get("feasible") and r.get("gap") is not None]
        optimum = next((r["optimum_total_latency_s"] for r in ok if r.get("optimum_total_latency_s")), None)
        walls = [float(r["wall_s"]) for r in ok if r.get("wall_s") is not None]
        out.append(
            {
                "instance": instance,
                "configuration": label,
                "cells": len(members),
                "ok": len(ok),
                "failed": sum(r.get("status") == STATUS_FAILED for r in members),
                "feasible": sum(bool(r.get("feasible")) for r in ok),
                "gap_mean": float(np.mean(gaps)) if gaps else None,
                "gap_best": min(gaps) if gaps else None,
                "gap_worst": max(gaps) if gaps else None,
                "gaps": gaps,
                "infeasible": len(ok) - sum(bool(r.get("feasible")) for r in ok),
                "optimum_total_latency_s": optimum,
                "wall_s_mean": float(np.mean(walls)) if walls else None,
            }
        )
    return out


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}"


def summary_rows(summary: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            g["instance"],
            g["configuration"],
            g["cells"],
            g["ok"],
            g["failed"],
            f"{g['feasible']}/{g['ok']}",
            _percent(g["gap_mean"]),
            _percent(g["gap_best"]),
            _percent(g["gap_worst"]),
            g["optimum_total_latency_s"],
            g["wall_s_mean"],
        ]
        for g in summary
    ]


def summary_text(summary: Sequence[Mapping[str, Any]], markdown: bool = False) -> str:
    return format_table(SUMMARY_HEADER, summary_rows(summary), markdown=markdown)


def write_summary(out_dir: Path, summary: Sequence[Mapping[str, Any]], title: str) -> list[Path]:
    csv_path, md_path = out_dir / SUMMARY_CSV, out_dir / SUMMARY_MD
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(SUMMARY_HEADER)
        writer.writerows(summary_rows(summary))
    note = (
        f"Sweep {title}: the trained policies' greedy placements against the exact optimum, per "
        "configuration over seeds (gap over feasible placements only; results.csv has every cell)."
    )
    md_path.write_text(note + "\n\n" + summary_text(summary, markdown=True) + "\n", encoding="utf-8")
    return [csv_path, md_path]


def plot_gaps(out_dir: Path, summary: Sequence[Mapping[str, Any]], title: str) -> Path | None:
    """Gap to the optimum per configuration (one dot per seed), one panel per instance."""
    if not any(g["ok"] for g in summary):
        return None
    instances = list(dict.fromkeys(g["instance"] for g in summary))
    width = max(5.0, 0.9 * max(sum(g["instance"] == i for g in summary) for i in instances) + 2.5)
    fig, axes = panel_grid(len(instances), width)
    rng = np.random.default_rng(0)  # jitter of the dots only
    for ax, instance in zip(axes, instances):
        groups = [g for g in summary if g["instance"] == instance]
        top = max([100 * v for g in groups for v in g["gaps"]] + [1.0])
        for x, group in enumerate(groups):
            gaps = 100 * np.asarray(group["gaps"], dtype=np.float64)
            if gaps.size:
                ax.scatter(x + rng.uniform(-0.12, 0.12, gaps.size), gaps, s=18, alpha=0.75, color="C0")
                ax.hlines(gaps.mean(), x - 0.25, x + 0.25, color="C3", lw=2)
            notes = []
            if group["infeasible"]:
                notes.append(f"{group['infeasible']} infeasible")
            if group["failed"]:
                notes.append(f"{group['failed']} failed")
            if notes:
                ax.text(x, top * 1.08, "\n".join(notes), ha="center", va="bottom", fontsize=7, color="C1")
        ax.set_xlim(-0.5, len(groups) - 0.5)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g["configuration"] for g in groups], rotation=25, ha="right", fontsize=8)
        ax.set_ylim(bottom=-0.05 * top, top=top * 1.3)
        ax.axhline(0, color="k", lw=0.8, ls="--")
        ax.set_ylabel("gap to optimum (%)")
        ax.set_title(instance, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{title}: greedy placement vs exact optimum (dots: seeds, bar: mean)", fontsize=10)
    path = out_dir / GAP_PLOT
    save_figure(fig, path)
    return path


def plot_rewards(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    summary: Sequence[Mapping[str, Any]],
    title: str,
    extra_axes: Sequence[str] = (),
) -> Path | None:
    """Reward versus episode per configuration (mean over seeds, min-max band), one panel per instance."""
    from qdt.experiments.sweep.cell import read_metrics_rewards

    varying = summary_varying(rows, extra_axes)
    curves: dict[tuple[str, str], list[list[float]]] = {}
    for row in rows:
        if row.get("status") != STATUS_OK or not row.get("run_dir"):
            continue
        rewards = read_metrics_rewards(out_dir / str(row["run_dir"]))
        if rewards:
            curves.setdefault((str(row["instance"]), group_label(row, varying)), []).append(rewards)
    if not curves:
        return None
    instances = list(dict.fromkeys(instance for instance, _ in curves))
    fig, axes = panel_grid(len(instances), 7.0)
    optimum = {g["instance"]: g["optimum_total_latency_s"] for g in summary if g["optimum_total_latency_s"]}
    for ax, instance in zip(axes, instances):
        means = [
            plot_reward_band(ax, runs, f"{label} ({len(runs)})").mean
            for (where, label), runs in curves.items()
            if where == instance
        ]
        if instance in optimum:
            plot_optimum(ax, optimum[instance])
        if means:
            lowest = min(float(m.min()) for m in means)
            ax.set_ylim(bottom=reward_floor(lowest, max(float(m.max()) for m in means)))
        ax.set_xlabel("episode")
        ax.set_ylabel(REWARD_LABEL)
        ax.set_title(instance, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}: reward per configuration (mean over seeds, band min-max; (n) seeds)", fontsize=10)
    path = out_dir / REWARD_PLOT
    save_figure(fig, path)
    return path
