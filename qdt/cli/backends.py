"""``qdt backends list|show``: the backend profiles (``backends/*.toml``) and what each can do.

JSON contract (``qdt backends list --json``): {"profiles": [profile...], "rules": [...],
"fake_devices": [...], "search_path": [...]}; each profile has name, executor, description,
source, shots, seed, capabilities {differentiable, shots, noisy, remote} and, for ibm profiles,
device {provider, name, ...}, optimization_level, runtime, error_suppression, estimator.
Capabilities come from each profile's backend (its registered spec), without opening it: no
connection to IBM, and no Runtime import for the other backends.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from qdt.experiments.tables import format_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backends",
        help="list the backend profiles (statevector, density, aer, fake and real IBM devices)",
        description=(
            "Backend profiles are TOML files (schema qdt-backend/1) in backends/ and in the "
            "directories of $QDT_BACKENDS_PATH: the executor, shots, and for IBM devices the device, "
            "execution mode (job, batch, session), optimisation level, error suppression (dynamical "
            "decoupling, twirling) and the Estimator's resilience level. Any command taking "
            "--backend accepts a profile name, a path to a .toml file, fake_<device> or ibm_<device>. "
            "Profiles never hold a token: see README, 'Running on a real IBM device'."
        ),
    )
    actions = parser.add_subparsers(dest="backends_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every profile with its capabilities")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=_cmd_list)
    show = actions.add_parser("show", help="one profile, fully resolved")
    show.add_argument("name", help="profile name, .toml path, fake_<device> or ibm_<device>")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_cmd_show)


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def rules() -> list[dict[str, str]]:
    """How names resolve without a profile file: the backends' rules, then ``executor:<name>``."""
    from qdt.executors.catalog import backend_spec, executor_names, name_rules

    found = [{"pattern": rule.pattern, "meaning": rule.meaning} for rule in name_rules()]
    ready = [name for name in executor_names() if backend_spec(name).needs is None]
    plain = " | ".join(f"executor:{name}" for name in ready)
    return [*found, {"pattern": plain, "meaning": "the executor with its default options (no profile file)"}]


def profile_data(profile: Any) -> dict[str, Any]:
    """The profile's JSON view with the capabilities its backend declares for it."""
    from qdt.executors import profile_capabilities

    return {**profile.to_dict(), "capabilities": dataclasses.asdict(profile_capabilities(profile))}


def _cmd_list(args: argparse.Namespace) -> int:
    from qdt.executors import list_backend_profiles, profile_capabilities
    from qdt.executors.profiles import backend_dirs
    from qdt.noise.device import fake_device_names

    profiles = list_backend_profiles()
    fakes = fake_device_names()
    if args.json:
        data = {
            "profiles": [profile_data(p) for p in profiles],
            "rules": rules(),
            "fake_devices": fakes,
            "search_path": [str(d) for d in backend_dirs()],
        }
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = []
    for profile in profiles:
        caps = profile_capabilities(profile)
        rows.append(
            [
                profile.name,
                profile.executor,
                profile.runs_on,
                profile.shots if profile.shots is not None else "exact",
                _yes(caps.differentiable),
                _yes(caps.noisy),
                _yes(caps.remote),
                profile.summary,
            ]
        )
    headers = ["profile", "executor", "runs on", "shots", "gradients", "noisy", "remote", "options"]
    print(format_table(headers, rows))
    print()
    for rule in rules():
        print(f"{rule['pattern']}: {rule['meaning']}")
    print(f"fake devices ({len(fakes)}): " + ", ".join(fakes))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from qdt.executors import load_backend_profile

    data = profile_data(load_backend_profile(args.name))
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for key, value in data.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0
