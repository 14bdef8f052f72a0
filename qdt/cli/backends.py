"""``qdt backends list|show``: the backend profiles (``backends/*.toml``) and what each can do.

JSON contract (``qdt backends list --json``): {"profiles": [profile...], "rules": [...],
"fake_devices": [...], "search_path": [...]}; each profile has name, executor, description,
source, shots, seed, capabilities {differentiable, shots, noisy, remote} and, for ibm profiles,
device {provider, name, ...}, optimization_level, runtime, error_suppression, estimator.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from qdt.executors.profiles import (
    backend_dirs,
    fake_device_names,
    list_backend_profiles,
    load_backend_profile,
)
from qdt.experiments.tables import format_table

RULES = [
    {
        "pattern": "fake_<device>",
        "meaning": "any fake device of qiskit_ibm_runtime.fake_provider, local testing mode, default options",
    },
    {
        "pattern": "ibm_<device>",
        "meaning": "the real IBM Quantum device of that name; channel and instance from the saved account",
    },
    {"pattern": "statevector | density | aer", "meaning": "the executor with its default options"},
]


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


def _cmd_list(args: argparse.Namespace) -> int:
    profiles = list_backend_profiles()
    fakes = fake_device_names()
    if args.json:
        data = {
            "profiles": [p.to_dict() for p in profiles],
            "rules": RULES,
            "fake_devices": fakes,
            "search_path": [str(d) for d in backend_dirs()],
        }
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = []
    for profile in profiles:
        caps = profile.capabilities
        if profile.device is not None:
            runs_on = (
                f"{profile.device.name} ({'local testing mode' if profile.device.local else 'IBM Quantum'})"
            )
            options = (
                f"{profile.runtime.mode}, opt {profile.optimization_level}"
                + (
                    f", DD {profile.suppression.dd_sequence}"
                    if profile.suppression.dynamical_decoupling
                    else ""
                )
                + (
                    ", twirling"
                    if profile.suppression.twirling_gates or profile.suppression.twirling_measure
                    else ""
                )
            )
        else:
            runs_on, options = "this machine", ""
            if profile.noise is not None:
                options = "noise" if not isinstance(profile.noise, str) else f"noise {profile.noise}"
        rows.append(
            [
                profile.name,
                profile.executor,
                runs_on,
                profile.shots if profile.shots is not None else "exact",
                _yes(caps.differentiable),
                _yes(caps.noisy),
                _yes(caps.remote),
                options,
            ]
        )
    headers = ["profile", "executor", "runs on", "shots", "gradients", "noisy", "remote", "options"]
    print(format_table(headers, rows))
    print()
    for rule in RULES:
        print(f"{rule['pattern']}: {rule['meaning']}")
    print(f"fake devices ({len(fakes)}): " + ", ".join(fakes))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    profile = load_backend_profile(args.name)
    data = profile.to_dict()
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for key, value in data.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0
