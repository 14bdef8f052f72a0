"""``qdt noise list|show|snapshot``: noise profiles and device calibration snapshots.

Contracts:
  qdt noise list [--devices] [--json]     names in noise_models/ (and fake devices)
  qdt noise show PROFILE [--json]          one profile's parameters (or a device's medians)
  qdt noise snapshot --backend NAME -o FILE
      writes the device's calibration (qdt-noise-snapshot/1 JSON); FILE loads back as a
      profile: --noise FILE, or --noise NAME once FILE sits in noise_models/. FILE must not
      exist: a snapshot pins a benchmark, so none is ever written over (nor any other file)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "noise",
        help="list, show and snapshot noise profiles",
        description=(
            "Noise profiles for --noise: TOML files in noise_models/ (by name), any profile or "
            "snapshot file (by path), or device:NAME for a fake IBM backend's calibration "
            "(qiskit_ibm_runtime.fake_provider; the circuit is transpiled to that device and "
            "runs on --backend aer). Parametric profiles (depolarizing, damping, thermal "
            "relaxation, readout error) run on both density and aer, identically."
        ),
    )
    commands = parser.add_subparsers(dest="noise_command", metavar="{list,show,snapshot}")
    commands.required = True

    listing = commands.add_parser("list", help="the named profiles (and, with --devices, fake devices)")
    listing.add_argument("--devices", action="store_true", help="also list every device:NAME available")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=_cmd_list)

    show = commands.add_parser("show", help="one profile's parameters")
    show.add_argument("profile", help="a profile name, a .toml/.json path, or device:NAME")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_cmd_show)

    snapshot = commands.add_parser(
        "snapshot",
        help="save a device's calibration so a benchmark can be pinned to it",
        description=(
            "Write the calibration qiskit-aer's device noise model is built from (T1, T2, "
            "gate errors and durations, readout errors; T2 capped at 2*T1 as qiskit-aer does) "
            "to a JSON file (format qdt-noise-snapshot/1). Loading it back gives the same noise "
            "model and the same transpilation target, whatever the installed fake backend data. "
            "FILE must be new: an existing file (a snapshot a benchmark is pinned to, or any "
            "other) is never written over, even by a second snapshot started at the same time."
        ),
    )
    snapshot.add_argument("--backend", required=True, help="fake backend, e.g. fake_brisbane")
    snapshot.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="new JSON file to write"
    )
    snapshot.add_argument("--name", help="profile name stored in the file (default: the backend's)")
    snapshot.set_defaults(handler=_cmd_snapshot)


def _cmd_list(args: argparse.Namespace) -> int:
    from qdt.noise.device import fake_backend_classes
    from qdt.noise.profiles import load_noise_profile, profile_names

    profiles = []
    for name in profile_names():
        profile = load_noise_profile(name)
        profiles.append({"name": name, "kind": profile.kind, "description": profile.description})
    devices = [f"device:{name}" for name in sorted(fake_backend_classes())] if args.devices else []
    if args.json:
        json.dump({"profiles": profiles, "devices": devices}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = [[p["name"], p["kind"], _shorten(p["description"], 90)] for p in profiles]
    print(format_table(["profile", "kind", "description"], rows))
    if devices:
        print()
        print("devices (aer only): " + ", ".join(devices))
    else:
        print("\nand device:NAME for any fake backend (qdt noise list --devices)")
    return 0


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cmd_show(args: argparse.Namespace) -> int:
    from qdt.noise.profiles import load_noise_profile

    summary = load_noise_profile(args.profile).summary()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from qdt.files import check_output_path, create_new_json
    from qdt.noise.device import DeviceCalibration, fake_backend

    if args.output.suffix != ".json":
        raise QdtInputError("--output", "a .json file name", str(args.output))
    check_output_path(args.output, "--output", kind="file")  # before the backend is built
    backend = fake_backend(args.backend)
    calibration = DeviceCalibration.from_backend(backend, name=args.name)
    create_new_json(args.output, calibration.to_json(), "--output")  # never over a file
    print(
        f"wrote {args.output}: {calibration.backend}, {calibration.num_qubits} qubits, "
        f"calibrated at {calibration.calibrated_at}; use --noise {args.output}"
    )
    return 0
