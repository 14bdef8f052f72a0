"""``qdt describe`` (parameter counts of every layer) and ``qdt circuit`` (one bound VQC).

Contracts (scripts depend on them):
  qdt circuit --qubits Q --layers L [--inputs ...] [--weights ...] [--seed S] --qasm2
      prints the bound circuit as OpenQASM 2
  qdt circuit ... --backend statevector|density|aer|PROFILE [--noise PROFILE] [--shots S] --json
      prints {"probs": [2^Q numbers], "expval_z": [Q numbers], "mode": "exact"|"sampled", ...}
      of that same bound circuit. An executor name runs that executor with its defaults:
      exact and noiseless unless --noise/--shots say otherwise. Any other backend profile
      (`qdt backends list`: fake_manila, a .toml file ...) runs with the profile's options,
      --noise/--shots overriding them; "transpiled" reports what transpilation to a device did.
      expval_z is computed from the same (possibly sampled) probabilities.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Any

import numpy as np
import torch

from qdt.cli.failures import fields_as_flags
from qdt.cli.problem import load_instance_file
from qdt.errors import QdtInputError
from qdt.experiments.tables import format_table
from qdt.problem.generator import paper_instance
from qdt.rl.config import DEFAULT_RECIPE, RECIPE_NAMES

DEFAULT_LAYERS = (1, 3, 6)


def register(subparsers: Any) -> None:
    describe = subparsers.add_parser(
        "describe",
        help="parameter counts of every layer of the actor and critic networks",
        description=(
            "Print every layer's parameter count for the hybrid actor and critic (VQC, then "
            "FC hidden-hidden-hidden) and the classical baseline, for an instance's N users and M "
            "servers, as `qdt train --recipe R` builds them. The actor reads W inputs (the paper "
            "and v1: its column of X, W = N; v2's shared actor adds the agent's one-hot code, "
            "W = N + M) on ceil(log2 W) qubits; the critic reads 2MN values on ceil(log2 2MN) "
            "qubits; each FC stack reads its VQC's 2^qubits probabilities."
        ),
    )
    source = describe.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=("paper",), help="the paper preset (default)")
    source.add_argument("--instance", metavar="FILE", help="an instance file")
    source.add_argument("--users", type=int, help="N users (with --servers) instead of an instance")
    describe.add_argument("--servers", type=int, help="M servers (with --users)")
    describe.add_argument(
        "--layers",
        default=",".join(map(str, DEFAULT_LAYERS)),
        help="VQC layer counts, comma-separated (default 1,3,6)",
    )
    describe.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        default=DEFAULT_RECIPE,
        help=f"the training recipe whose networks to count (default {DEFAULT_RECIPE}, as qdt train; "
        "paper: the paper's networks)",
    )
    describe.add_argument("--json", action="store_true", help="print one JSON object")
    describe.set_defaults(handler=_cmd_describe)

    circuit = subparsers.add_parser(
        "circuit",
        help="print one bound VQC as OpenQASM 2, or run it on an executor",
        description=(
            "Build the paper's VQC on Q qubits with L layers, bind its encoding to --inputs "
            "(zero-padded to 2^Q values) and its weights to --weights (or weights drawn "
            "uniformly in [0, 2pi) from --seed), then print it as OpenQASM 2 (--qasm2) or run it "
            "(--backend ... --json: probabilities and per-qubit <Z>)."
        ),
    )
    circuit.add_argument("--qubits", type=int, required=True, help="qubits Q >= 1")
    circuit.add_argument("--layers", type=int, required=True, help="layers L >= 0")
    circuit.add_argument("--inputs", help="input values, comma-separated (default: all zero)")
    circuit.add_argument("--weights", help="Q*L weights, comma-separated (default: drawn from --seed)")
    circuit.add_argument("--seed", type=int, default=0, help="seed for the weights (default 0)")
    circuit.add_argument(
        "--backend",
        default="statevector",
        help="executor (statevector, density, aer: their defaults) or backend profile (default statevector)",
    )
    circuit.add_argument(
        "--noise",
        metavar="PROFILE",
        help="noise profile (density, aer): a name from `qdt noise list`, a file, or device:NAME (aer)",
    )
    circuit.add_argument(
        "--shots",
        type=int,
        help="estimate from S shots (density, aer, devices; default: exact, or the profile's)",
    )
    circuit.add_argument("--shot-seed", type=int, help="seed for the shots (default: derived from --seed)")
    mode = circuit.add_mutually_exclusive_group(required=True)
    mode.add_argument("--qasm2", action="store_true", help="print the bound circuit as OpenQASM 2")
    mode.add_argument("--json", action="store_true", help="run it and print probs and expval_z as JSON")
    circuit.set_defaults(handler=_cmd_circuit)


# ---- describe ----------------------------------------------------------------------------
def describe_networks(
    n_users: int, n_servers: int, layers: list[int], recipe: str = DEFAULT_RECIPE
) -> dict[str, Any]:
    """Parameter counts of the networks ``qdt train --recipe recipe`` builds for N users, M servers
    (``critic`` None when the recipe's learner trains none)."""
    from qdt.circuits import build_vqc, qubits_for_width
    from qdt.rl.builders import actor_width
    from qdt.rl.config import TrainConfig
    from qdt.rl.fc import fc_stack, linear_parameter_counts

    config = TrainConfig.from_recipe(recipe)
    width, joint = actor_width(config, n_users, n_servers), 2 * n_users * n_servers
    actor_qubits, critic_qubits = qubits_for_width(width), qubits_for_width(joint)
    hidden = config.hidden
    scores = 1 if config.observation in ("user", "placement") else n_users  # per row, or per column
    return {
        "users": n_users,
        "servers": n_servers,
        "recipe": recipe,
        "actor": {
            "inputs": width,
            "shared": config.sharing == "shared",
            "qubits": actor_qubits,
            "quantum_weights": {str(L): build_vqc(input_width=width, n_layers=L).n_weights for L in layers},
            "input_scaling": 2 * width if config.input_scaling == "affine" else 0,
            "fc": linear_parameter_counts(fc_stack(2**actor_qubits, scores, hidden)),
            "fc_classical": linear_parameter_counts(fc_stack(width, scores, hidden)),
        },
        "critic": None
        if not config.trains_critic
        else {
            "inputs": joint,
            "shared": config.sharing == "shared",
            "qubits": critic_qubits,
            "quantum_weights": {str(L): build_vqc(input_width=joint, n_layers=L).n_weights for L in layers},
            "fc": linear_parameter_counts(fc_stack(2**critic_qubits, 1, hidden)),
            "fc_classical": linear_parameter_counts(fc_stack(joint, 1, hidden)),
        },
    }


def _cmd_describe(args: argparse.Namespace) -> int:
    from qdt.circuits.vqc import check_layers
    from qdt.problem.instance import check_size
    from qdt.rl.builders import check_fits
    from qdt.rl.config import TrainConfig

    layers = [check_layers(L, "--layers") for L in _int_list(args.layers, "--layers", minimum=0)]
    if args.users is not None or args.servers is not None:
        if args.users is None or args.servers is None:
            raise QdtInputError("--users/--servers", "both", "only one", "e.g. --users 4 --servers 2")
        for flag, value in (("--users", args.users), ("--servers", args.servers)):
            if value < 1:
                raise QdtInputError(flag, "an integer >= 1", value)
        check_size(args.users, args.servers, "--users", "--servers")
        n, m, source = args.users, args.servers, "--users/--servers"
    else:
        instance = load_instance_file(args.instance, "--instance") if args.instance else paper_instance()
        n, m = instance.n_users, instance.n_servers
        source = "--instance" if args.instance else "--preset"
    try:  # the recipe's quantum actor and critic (when it has one) must fit
        check_fits(TrainConfig.from_recipe(args.recipe, agent="quantum"), n, m, source)
    except QdtInputError as error:
        raise QdtInputError(
            error.field, error.expected, error.got, "describe fewer users or servers"
        ) from None
    data = describe_networks(n, m, layers, args.recipe)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    sharing = "shared by" if data["actor"]["shared"] else "for each of"
    if data["critic"] is None:
        learner = TrainConfig.from_recipe(args.recipe).learner
        print(f"recipe {args.recipe}: one actor {sharing} the {m} agents; no critic (learner {learner})")
    else:
        print(f"recipe {args.recipe}: one actor and one critic {sharing} the {m} agents")
    for role in ("actor", "critic"):
        part = data[role]
        if part is None:
            continue
        width = part["inputs"]
        print(f"{role}: input {width} values -> VQC on {part['qubits']} qubits -> FC")
        rows: list[list[object]] = []
        if part.get("input_scaling"):
            rows.append(
                ["input scaling", part["input_scaling"], "a scale and a shift per input, before the VQC"]
            )
        for L in layers:
            rows.append([f"VQC, L = {L}", part["quantum_weights"][str(L)], "RX angles"])
        for k, count in enumerate(part["fc"]):
            rows.append(
                [f"FC {k + 1}", count, "hybrid" if k else f"reads {2 ** part['qubits']} probabilities"]
            )
        rows.append(["FC total", sum(part["fc"]), ""])
        rows.append(
            ["classical FC", " / ".join(map(str, part["fc_classical"])), f"reads the {width} raw inputs"]
        )
        print(format_table(["layer", "parameters", "note"], rows))
        print()
    return 0


# ---- circuit -----------------------------------------------------------------------------
def _cmd_circuit(args: argparse.Namespace) -> int:
    from qdt.circuits import build_vqc
    from qdt.circuits.vqc import check_layers, check_qubits

    check_qubits(args.qubits, "--qubits")  # the sizes, before anything is built
    check_layers(args.layers, "--layers")
    width = 2**args.qubits
    inputs = _float_list(args.inputs, "--inputs") if args.inputs else [0.0] * width
    if len(inputs) > width:
        raise QdtInputError("--inputs", f"at most 2^Q = {width} values", f"{len(inputs)} values")
    inputs = inputs + [0.0] * (width - len(inputs))
    vqc = build_vqc(input_width=width, n_layers=args.layers, n_qubits=args.qubits)
    if args.weights is not None:
        weights = _float_list(args.weights, "--weights")
        if len(weights) != vqc.n_weights:
            raise QdtInputError("--weights", f"Q*L = {vqc.n_weights} values", f"{len(weights)} values")
    else:
        weights = list(np.random.default_rng(args.seed).uniform(0.0, 2 * math.pi, vqc.n_weights))
    angles = vqc.angles(torch.tensor([inputs], dtype=torch.float64))
    if args.qasm2 and (args.noise is not None or args.shots is not None):
        raise QdtInputError("--noise/--shots", "only with --json (they change how it runs)", "--qasm2")
    if args.qasm2:
        from qiskit import qasm2

        bound = vqc.bound_circuit(angles[0].tolist(), weights)
        sys.stdout.write(qasm2.dumps(bound) + "\n")
        return 0
    from qdt.executors import expval_z

    executor, profile, noise_name = circuit_executor(args)
    prepared = executor.prepare_vqc(vqc)
    weight_tensor = torch.tensor(weights, dtype=torch.float64)
    with torch.no_grad():
        probs_batch = executor.run(prepared, angles, weight_tensor, readout="probs")
    probs, expval = probs_batch[0], expval_z(probs_batch)[0]
    result: dict[str, Any] = {
        "qubits": args.qubits,
        "layers": args.layers,
        "backend": args.backend,
        "mode": executor.last_run_info.get("mode", "sampled" if executor.capabilities.shots else "exact"),
        "shots": profile.shots if executor.capabilities.shots else None,
        "noise": noise_name,
        "probs": [float(v) for v in probs],
        "expval_z": [float(v) for v in expval],
        "weights": [float(w) for w in weights],
    }
    report = executor.isa_report(prepared)
    if report is not None:
        result["transpiled"] = report
    executor.close()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def circuit_executor(args: argparse.Namespace) -> tuple[Any, Any, str | None]:
    """The executor for ``--backend/--noise/--shots``, its profile and the noise's name.

    A plain executor name means that executor with its defaults (``executor:<name>``), so
    ``--backend aer`` is exact unless --shots are given; any other name is a backend profile.
    The shots' seed is a child of --seed's sequence (a stream apart from the weights'), or
    --shot-seed.
    """
    from qdt.executors import (
        backend_options,
        executor_names,
        load_backend_profile,
        open_backend,
        validate_shots,
    )

    name = f"executor:{args.backend}" if args.backend in executor_names() else args.backend
    with fields_as_flags(backend="--backend"):
        profile = load_backend_profile(name)
    accepted = backend_options(profile)
    if args.noise is not None and "noise" not in accepted:
        raise QdtInputError(
            "--noise", "a backend that takes a noise model (density, aer)", args.backend, "add --backend aer"
        )
    if args.shots is not None:
        validate_shots(args.shots, "--shots")
        if "shots" not in accepted:
            raise QdtInputError(
                "--shots",
                "a backend that samples shots (density, aer, devices)",
                args.backend,
                "add --backend aer, or leave out --shots for exact results",
            )
    noise: Any = None
    noise_name = profile.noise if isinstance(profile.noise, str) else None
    if args.noise is not None:
        from qdt.noise.profiles import load_noise_profile

        with fields_as_flags(backend="--noise", noise="--noise"):  # backend: of device:NAME
            noise = load_noise_profile(args.noise)
        noise_name = noise.name
    if args.shot_seed is None:
        seed = np.random.SeedSequence(args.seed).spawn(1)[0]
    else:
        seed = np.random.SeedSequence(args.shot_seed)
    with fields_as_flags(backend="--backend", shots="--shots", noise="--noise"):
        executor = open_backend(profile, shots=args.shots, seed=seed, noise=noise)
    if args.shots is not None:
        profile = dataclasses.replace(profile, shots=args.shots)
    return executor, profile, noise_name


def _float_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise QdtInputError(flag, "comma-separated numbers", text) from None
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise QdtInputError(flag, "finite numbers", bad[0])
    return values


def _int_list(text: str, flag: str, minimum: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise QdtInputError(flag, "comma-separated integers", text) from None
    bad = [v for v in values if v < minimum]
    if bad:
        raise QdtInputError(flag, f"integers >= {minimum}", bad[0])
    return values
