"""``qdt train``: Algorithm 1 on an instance, with checkpoints, exact resume and a summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from qdt.cli.config_flags import add_config_flags, apply_changes, config_changes, option_of
from qdt.cli.problem import load_instance_file
from qdt.errors import QdtInputError
from qdt.files import NEW_FOLDER, FolderRule, claim_output_folder, hold_folder
from qdt.problem.generator import paper_instance
from qdt.rl.config import (
    CONSTRUCT_DEFAULTS,
    DEFAULT_RECIPE,
    FAMILY_DEFAULTS,
    FAMILY_RECIPE,
    RECIPES,
    RUNTIME_FIELDS,
    TrainConfig,
    default_recipe,
    resolve_torch_device,
)

# TrainConfig fields that are not flags: lr_critic is set with lr_actor by --lr; the others are
# settled choices (qdt/rl/config.py says why) that sweep specs and config files can still change.
_NOT_FLAGS = (
    "updates_per_episode",
    "warmup_transitions",
    "hidden",
    "reward_scale",
    "logit_penalty",
    "ppo_clip",
)
_RENAMED = {"channel_fading_db": "fading-db"}
_COMBINED = {"lr": ("lr_actor", "lr_critic")}


def _shown_defaults() -> dict[str, dict[str, Any]]:
    """What --help shows as a flag's default where the two default recipes differ."""
    return {
        "on one instance": {**RECIPES[DEFAULT_RECIPE], "recipe": DEFAULT_RECIPE},
        "with --family": {**RECIPES[FAMILY_RECIPE], **FAMILY_DEFAULTS, "recipe": FAMILY_RECIPE},
    }


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help=f"train a placement policy (recipe {DEFAULT_RECIPE} on one instance; v1 or paper: Algorithm 1)",
        description=(
            f"Train the base stations' placement policy on an instance, or, with --family, one policy "
            f"on a stream of instances drawn fresh every episode and environment (fading, --fading-db, "
            f"is drawn on top of each). Without --recipe, one instance trains recipe {DEFAULT_RECIPE} "
            f"(the actor constructs placements user by user and imitates the best it has found; no "
            f"critic) and a family trains {FAMILY_RECIPE} (one actor and one centralised critic per "
            f"base station, Algorithm 1, eqs. 37-40); --recipe v1 and --recipe paper reproduce the "
            f"paper's setting. "
            "Writes DIR/config.json, metrics.jsonl (one line per "
            "episode), checkpoint.pt (every --checkpoint-every episodes), summary.json (the "
            "greedy placement against the exact optimum) and reward.png. `--resume DIR` "
            "continues an interrupted run bit for bit; changing a setting on resume is refused, "
            "except --torch-device (where it computes: a run may resume on another device). "
            "--out must be a new or empty folder; while a run writes its folder, another "
            "`qdt train` on it is refused with the pid of the one writing."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--instance", type=Path, metavar="FILE", help="instance JSON (qdt-instance/1)")
    source.add_argument("--preset", choices=("paper",), help="built-in instance (default: paper)")
    source.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="new or empty run folder (required unless --resume)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_config_flags(
        parser,
        TrainConfig,
        exclude=_NOT_FLAGS,
        rename=_RENAMED,
        combine=_COMBINED,
        title="training options (TrainConfig fields, qdt/rl/config.py; unset ones keep the recipe's)",
        shown_defaults=_shown_defaults(),
    )
    parser.set_defaults(handler=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from qdt.rl.train import CONFIG_FILE, family_instance, load_run_config, train

    if args.resume is not None:
        config, instance = load_run_config(args.resume)
        changes = config_changes(args)
        config = config.replace(**{field: changes[field] for field in RUNTIME_FIELDS if field in changes})
        for field, value in changes.items():
            if getattr(config, field) != value:
                raise QdtInputError(
                    option_of(args, field),
                    f"the run's own value {getattr(config, field)!r} when resuming",
                    value,
                    "resume without changing settings, or start a new run with --out",
                )
        if args.out is not None and args.out.resolve() != args.resume.resolve():
            raise QdtInputError(
                "--out",
                "nothing, or the folder being resumed",
                str(args.out),
                f"leave out --out: --resume {args.resume} writes that folder",
            )
        run_dir = args.resume
        resume = True
        folder = hold_folder(run_dir, "--resume")
    else:
        if args.out is None:
            raise QdtInputError("--out", "a run folder", "nothing", "e.g. --out runs/quantum-l6")
        changes = config_changes(args)
        # the recipe under the flags given
        recipe = changes.get("recipe", default_recipe(family="family" in changes))
        # a family's actors score user by user unless --observation says otherwise (FAMILY_DEFAULTS);
        # with --decode construct they read the whole partial placement (CONSTRUCT_DEFAULTS)
        constructs = changes.get("decode", RECIPES.get(recipe, {}).get("decode")) == "construct"
        defaults = CONSTRUCT_DEFAULTS if constructs else FAMILY_DEFAULTS
        family_base = (
            {key: value for key, value in defaults.items() if key not in changes}
            if "family" in changes and "observation" not in changes
            else {}
        )
        if constructs and family_base:  # the recipe's config with them must hold on its own
            family_base.update(decode="construct", family=changes["family"])
        try:
            config = apply_changes(args, TrainConfig.from_recipe(recipe, **family_base))
        except QdtInputError as error:
            error = _named_as_flag(args, error, False)
            if "recipe" not in changes and recipe == DEFAULT_RECIPE:  # flags meant for another recipe?
                hint = (
                    f"without --recipe one instance trains {DEFAULT_RECIPE}; to start from another, "
                    f"name it, e.g. --recipe {FAMILY_RECIPE} (the default before {DEFAULT_RECIPE})"
                )
                fix = f"{error.fix}; or {hint}" if error.fix else hint
                error = QdtInputError(error.field, error.expected, error.got, fix)
            raise error from None
        if config.family is not None:
            if args.instance is not None or args.preset is not None:
                raise QdtInputError(
                    "--family",
                    "no --instance or --preset beside it (a family run draws its own instances)",
                    "--instance" if args.instance is not None else "--preset",
                    "drop one of the two",
                )
            instance = family_instance(config)
        else:
            instance = load_instance_file(args.instance, "--instance") if args.instance else paper_instance()
        run_dir = args.out
        resume = False
        rule = NEW_FOLDER
        if (run_dir / CONFIG_FILE).is_file():
            rule = FolderRule(
                fix=f"it is a run folder: to continue it, use --resume {run_dir}; or choose a new folder"
            )
        folder = claim_output_folder(run_dir, "--out", rule)
    resolve_torch_device(config.torch_device)  # before the folder is taken or anything is built
    with folder:  # the folder is this process's until the run ends (qdt/files.py)
        try:
            summary = train(config, instance, run_dir, resume=resume, progress=not args.no_progress)
        except QdtInputError as error:
            raise _named_as_flag(args, error, resume) from None
    if args.json:
        json.dump(summary, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    _print_summary(summary, run_dir)
    return 0


def _named_as_flag(args: argparse.Namespace, error: QdtInputError, resume: bool) -> QdtInputError:
    """``error`` naming the flag (``--batch-size``) where it names a TrainConfig field
    (``batch_size``) of a new run; on resume the setting comes from the run's config.json."""
    if error.field not in {f.name for f in dataclasses.fields(TrainConfig)}:
        return error
    field = f"{args.resume / 'config.json'}: {error.field}" if resume else option_of(args, error.field)
    return QdtInputError(field, error.expected, error.got, error.fix)


def _print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    verdict = "feasible" if summary["feasible"] else "INFEASIBLE"
    assignment = summary["assignment"]
    placed = "-" if assignment is None else ",".join(map(str, assignment))
    print(f"greedy placement {placed}: {verdict}, total latency {summary['total_latency_s']:.4f} s")
    if summary["optimum_total_latency_s"] is not None:
        gap = summary["gap"]
        gap_text = "n/a (infeasible)" if gap is None else f"{100 * gap:.2f}%"
        print(f"optimum {summary['optimum_total_latency_s']:.4f} s, gap {gap_text}")
    else:
        print(f"optimum: {summary['optimum_status']}")
    family = summary.get("family")
    if family is not None:
        median = family["gap_median"]
        print(
            f"family {family['spec']}: on {family['held_out_instances']} held-out instances "
            f"{100 * family['feasible_share']:.0f}% feasible, median gap to the optimum "
            + (
                "n/a"
                if median is None
                else f"{100 * median:.2f}% (quartiles {100 * family['gap_q1']:.2f}%"
                f"-{100 * family['gap_q3']:.2f}%)"
            )
        )
        if family.get("bounded"):  # instances whose optimum the MILP did not prove in the summary's limit
            bound_median = family["bound_gap_median"]
            print(
                f"  on the {family['bounded']} of them without a proven optimum, median gap to the MILP's "
                "lower bound (at least the gap to the optimum) "
                + ("n/a" if bound_median is None else f"{100 * bound_median:.2f}%")
            )
    if summary["best_seen_total_latency_s"] is not None:
        print(f"best feasible placement seen in training: {summary['best_seen_total_latency_s']:.4f} s")
    print(f"{summary['episodes']} episodes in {summary['wall_s']:.1f} s; wrote {run_dir}/summary.json")
