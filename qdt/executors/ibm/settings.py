"""The ``ibm`` profile's own tables, and the names ``fake_<device>`` / ``ibm_<device>``.

An ``ibm`` profile names a device (``[device]``: ``provider = "fake"`` for qiskit-ibm-runtime's
local testing mode, ``"ibm_cloud"`` for a real device) and never a token: the token comes from
``QISKIT_IBM_TOKEN`` or a saved Qiskit account (see :mod:`qdt.executors.ibm.connect`).
``[device] fractional_gates = true`` (default false) runs RX(θ) as one native gate on a device
that has it (:mod:`qdt.executors.ibm.fractional`). The other tables are optional::

    [transpile]          optimization_level = 2, seed = 1234
    [runtime]            mode (job | batch | session), timeout_s, poll_interval_s, max_poll_interval_s,
                         retries, retry_base_s, on_timeout (leave | cancel), max_execution_time_s,
                         primitive (sampler | executor)
    [error_suppression]  dynamical_decoupling, dd_sequence (XX | XpXm | XY4), twirling_gates,
                         twirling_measure
    [estimator]          use_for_expval, resilience_level (0 | 1 | 2)

Without a file, ``fake_<device>`` (any fake device of ``qiskit_ibm_runtime.fake_provider``, by
the naming rule of :mod:`qdt.noise.device`) and ``ibm_<device>`` (a real device, account
defaults) resolve to profiles with default options (:data:`RULES`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qdt.errors import QdtInputError
from qdt.executors.profiles import DEFAULT_SHOTS, BackendProfile, TableReader
from qdt.executors.registry import NameRule
from qdt.noise.device import fake_device_name

PROVIDERS = ("fake", "ibm_cloud")
MODES = ("job", "batch", "session")
DD_SEQUENCES = ("XX", "XpXm", "XY4")
ON_TIMEOUT = ("leave", "cancel")
PRIMITIVES = ("sampler", "executor")
EXECUTOR_SINCE = (0, 47)  # the first qiskit-ibm-runtime with the Executor primitive and QuantumProgram
CHANNELS = ("ibm_quantum_platform", "ibm_cloud")
TABLES = frozenset({"device", "transpile", "runtime", "error_suppression", "estimator"})
_IBM_DEVICE = re.compile(r"^ibm_[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class DeviceSpec:
    """The device an ``ibm`` profile runs on. Holds no secret."""

    provider: str  # "fake" (local testing mode) or "ibm_cloud" (a real device)
    name: str  # fake: "fake_torino"; ibm_cloud: "ibm_torino"
    channel: str | None = None  # ibm_cloud: default from the saved account / QISKIT_IBM_CHANNEL
    instance: str | None = None  # ibm_cloud: CRN or name; default from the saved account
    account: str | None = None  # ibm_cloud: name of a saved account (QiskitRuntimeService(name=...))
    fractional_gates: bool = False  # native RX(θ): use_fractional_gates=True, or a fake target with rx

    @property
    def local(self) -> bool:
        return self.provider == "fake"

    def to_dict(self) -> dict[str, Any]:
        """The set fields (``fractional_gates`` only when on)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v is not False}


@dataclass(frozen=True)
class RuntimeSettings:
    """How jobs are submitted and watched (``[runtime]``)."""

    mode: str = "job"  # job | batch | session (Qiskit Runtime execution modes)
    timeout_s: float = 3600.0  # qdt's own wall-clock limit per job, cloud and local alike
    poll_interval_s: float = 2.0  # first status poll; grows ×1.5 up to max_poll_interval_s
    max_poll_interval_s: float = 30.0
    retries: int = 6  # transient service errors retried this many times per call
    retry_base_s: float = 1.0  # backoff: base·2^k (capped at 60 s), with jitter
    on_timeout: str = "leave"  # leave the job running (fetch it later) or cancel it
    max_execution_time_s: int | None = None  # the service's own limit (Runtime max_execution_time)
    # sampler: the runtime's Sampler (the default); executor: qdt's PUBs as a QuantumProgram on the
    # runtime's Executor primitive (beta, qiskit-ibm-runtime >= 0.47; qdt.executors.ibm.program)
    primitive: str = "sampler"


@dataclass(frozen=True)
class ErrorSuppression:
    """Runtime error suppression for SamplerV2 and EstimatorV2 (``[error_suppression]``)."""

    dynamical_decoupling: bool = False
    dd_sequence: str = "XY4"
    twirling_gates: bool = False
    twirling_measure: bool = False


@dataclass(frozen=True)
class EstimatorSettings:
    """EstimatorV2 for the ⟨Z_i⟩ readout (``[estimator]``); probabilities always use SamplerV2."""

    use_for_expval: bool = False
    resilience_level: int = 1  # 0 none, 1 readout mitigation (TREX), 2 + ZNE


@dataclass(frozen=True)
class IBMOptions:
    """``BackendProfile.options`` of an ``ibm`` profile."""

    device: DeviceSpec
    optimization_level: int = 2
    transpile_seed: int | None = 1234
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    suppression: ErrorSuppression = field(default_factory=ErrorSuppression)
    estimator: EstimatorSettings = field(default_factory=EstimatorSettings)

    @property
    def runs_on(self) -> str:
        return f"{self.device.name} ({'local testing mode' if self.device.local else 'IBM Quantum'})"

    @property
    def summary(self) -> str:
        text = f"{self.runtime.mode}, opt {self.optimization_level}"
        if self.device.fractional_gates:
            text += ", fractional gates"
        if self.runtime.primitive == "executor":
            text += ", Executor primitive"
        if self.suppression.dynamical_decoupling:
            text += f", DD {self.suppression.dd_sequence}"
        if self.suppression.twirling_gates or self.suppression.twirling_measure:
            text += ", twirling"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device.to_dict(),
            "optimization_level": self.optimization_level,
            "transpile_seed": self.transpile_seed,
            "runtime": dataclasses.asdict(self.runtime),
            "error_suppression": dataclasses.asdict(self.suppression),
            "estimator": dataclasses.asdict(self.estimator),
        }


def ibm_options(profile: BackendProfile) -> IBMOptions:
    """The ibm options of ``profile``; anything else is refused naming the profile."""
    if profile.executor != "ibm" or not isinstance(profile.options, IBMOptions):
        raise QdtInputError("backend", "an ibm profile (fake_<device> or ibm_<device>)", profile.name)
    return profile.options


# ---- parsing ----------------------------------------------------------------------------------
def parse_ibm_options(data: Mapping[str, Any], where: str) -> IBMOptions:
    """The ibm tables of a profile mapping; every error names ``<where>: <table>.<key>``."""
    reader = TableReader(data, f"{where}: ")
    device = _parse_device(reader.table("device", required=True), f"{where}: device")
    transpile = reader.table("transpile")
    t_reader = TableReader(transpile, f"{where}: transpile.")
    t_reader.reject_unknown({"optimization_level", "seed"})
    level = t_reader.get("optimization_level", int)
    level = 2 if level is None else level
    if level not in (0, 1, 2, 3):
        raise QdtInputError(f"{where}: transpile.optimization_level", "0, 1, 2 or 3", level)
    transpile_seed = t_reader.get("seed", int) if "seed" in transpile else 1234
    options = IBMOptions(
        device=device,
        optimization_level=level,
        transpile_seed=transpile_seed,
        runtime=_parse_dataclass(RuntimeSettings, reader.table("runtime"), f"{where}: runtime"),
        suppression=_parse_dataclass(
            ErrorSuppression, reader.table("error_suppression"), f"{where}: error_suppression"
        ),
        estimator=_parse_dataclass(EstimatorSettings, reader.table("estimator"), f"{where}: estimator"),
    )
    if options.runtime.primitive == "executor":
        _check_executor_compatible(options, where)
    return options


def _check_executor_compatible(options: IBMOptions, where: str) -> None:
    """The Executor runs circuits as given and returns bits: no Sampler-side error suppression
    (twirling and dynamical decoupling are the Sampler's passes) and no Estimator."""
    suppression = options.suppression
    if suppression.dynamical_decoupling or suppression.twirling_gates or suppression.twirling_measure:
        raise QdtInputError(
            f"{where}: error_suppression",
            "no dynamical decoupling or twirling with runtime.primitive = 'executor' (Sampler passes)",
            "error suppression on",
            "set them false, or use runtime.primitive = 'sampler'",
        )
    if options.estimator.use_for_expval:
        raise QdtInputError(
            f"{where}: estimator.use_for_expval",
            "false with runtime.primitive = 'executor' (the Executor returns bits; <Z> comes from counts)",
            True,
            "set it false, or use runtime.primitive = 'sampler'",
        )


def runtime_version() -> tuple[int, int] | None:
    """(major, minor) of the installed qiskit-ibm-runtime, read from its metadata (no import), or None."""
    from importlib import metadata

    try:
        text = metadata.version("qiskit-ibm-runtime")
    except metadata.PackageNotFoundError:
        return None
    numbers = re.findall(r"\d+", text)
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


def _check_executor_available(field_name: str) -> None:
    installed = runtime_version()
    if installed is None or installed < EXECUTOR_SINCE:
        shown = "not installed" if installed is None else "qiskit-ibm-runtime {}.{}".format(*installed)
        since = "{}.{}".format(*EXECUTOR_SINCE)
        raise QdtInputError(
            field_name,
            f"'sampler': the Executor primitive needs qiskit-ibm-runtime >= {since}",
            f"'executor' with {shown}, which has no Executor",
            f"pip install 'qiskit-ibm-runtime>={since}', or use primitive = 'sampler'",
        )


def _parse_device(table: Mapping[str, Any], where: str) -> DeviceSpec:
    reader = TableReader(table, f"{where}.")
    reader.reject_unknown({"provider", "name", "channel", "instance", "account", "fractional_gates"})
    provider = reader.require("provider", str)
    if provider not in PROVIDERS:
        raise QdtInputError(f"{where}.provider", "'fake' (local testing mode) or 'ibm_cloud'", provider)
    name = reader.require("name", str)
    extra = {k: reader.get(k, str) for k in ("channel", "instance", "account")}
    fractional = bool(reader.get("fractional_gates", bool))  # whether the device has rx: on connecting
    if provider == "fake":
        given = [k for k, v in extra.items() if v]
        if given:
            raise QdtInputError(f"{where}.{given[0]}", "no account fields for a fake device", extra[given[0]])
        name = fake_device_name(name, field=f"{where}.name")  # the fake device must exist
    else:
        if not re.match(r"^[a-z][a-z0-9_]*$", name):
            raise QdtInputError(f"{where}.name", "an IBM device name such as 'ibm_torino'", name)
        channel = extra["channel"]
        if channel is not None and channel not in CHANNELS:
            raise QdtInputError(f"{where}.channel", "one of " + ", ".join(CHANNELS), channel)
    return DeviceSpec(provider=provider, name=name, fractional_gates=fractional, **extra)


def _parse_dataclass(cls: type, table: Mapping[str, Any], where: str) -> Any:
    reader = TableReader(table, f"{where}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    reader.reject_unknown(set(fields))
    values: dict[str, Any] = {}
    for key, spec in fields.items():
        if key not in table:
            continue
        kind = {"bool": bool, "str": str, "int": int, "float": float}[_base_type(spec.type)]
        values[key] = reader.get(key, kind)
    settings = cls(**values)
    _check_settings(settings, where)
    return settings


def _base_type(annotation: object) -> str:
    text = str(annotation)
    for name in ("bool", "str", "float", "int"):
        if text.startswith(name):
            return name
    raise AssertionError(f"unsupported field type {annotation}")


def _check_settings(settings: object, where: str) -> None:
    if isinstance(settings, RuntimeSettings):
        if settings.mode not in MODES:
            raise QdtInputError(f"{where}.mode", "one of " + ", ".join(MODES), settings.mode)
        if settings.on_timeout not in ON_TIMEOUT:
            raise QdtInputError(f"{where}.on_timeout", "'leave' or 'cancel'", settings.on_timeout)
        for key in ("timeout_s", "poll_interval_s", "max_poll_interval_s", "retry_base_s"):
            value = getattr(settings, key)
            if not math.isfinite(value) or value <= 0:
                raise QdtInputError(f"{where}.{key}", "a positive number of seconds", value)
        if settings.max_poll_interval_s < settings.poll_interval_s:
            raise QdtInputError(
                f"{where}.max_poll_interval_s",
                f">= poll_interval_s ({settings.poll_interval_s})",
                settings.max_poll_interval_s,
            )
        if not 0 <= settings.retries <= 20:
            raise QdtInputError(f"{where}.retries", "an integer from 0 to 20", settings.retries)
        if settings.primitive not in PRIMITIVES:
            raise QdtInputError(
                f"{where}.primitive",
                "'sampler' or 'executor'",
                settings.primitive,
                "use 'sampler' (the default) or 'executor' (qiskit-ibm-runtime's Executor primitive, beta)",
            )
        if settings.primitive == "executor":
            _check_executor_available(f"{where}.primitive")
        if settings.max_execution_time_s is not None and settings.max_execution_time_s < 1:
            raise QdtInputError(
                f"{where}.max_execution_time_s", "a positive number of seconds", settings.max_execution_time_s
            )
    elif isinstance(settings, ErrorSuppression):
        if settings.dd_sequence not in DD_SEQUENCES:
            raise QdtInputError(
                f"{where}.dd_sequence", "one of " + ", ".join(DD_SEQUENCES), settings.dd_sequence
            )
    elif isinstance(settings, EstimatorSettings):
        if settings.resilience_level not in (0, 1, 2):
            raise QdtInputError(f"{where}.resilience_level", "0, 1 or 2", settings.resilience_level)


# ---- rules: fake_<device>, ibm_<device> --------------------------------------------------------
def fake_device_profile(name: str) -> BackendProfile | None:
    """``fake_<device>`` with default options (local testing mode), or None for other names."""
    if not name.startswith("fake_") or len(name) <= len("fake_"):
        return None
    device = fake_device_name(name, field="backend")
    options = IBMOptions(
        device=DeviceSpec(provider="fake", name=device),
        runtime=RuntimeSettings(poll_interval_s=0.2, max_poll_interval_s=2.0),
    )
    description = f"{device} snapshot in qiskit-ibm-runtime local testing mode"
    return _rule_profile(name, "fake_<device>", description, options)


def ibm_device_profile(name: str) -> BackendProfile | None:
    """``ibm_<device>`` with the account's defaults, or None for other names."""
    if not _IBM_DEVICE.match(name):
        return None
    options = IBMOptions(device=DeviceSpec(provider="ibm_cloud", name=name))
    return _rule_profile(name, "ibm_<device>", f"IBM Quantum device {name}; account defaults", options)


def _rule_profile(name: str, rule: str, description: str, options: IBMOptions) -> BackendProfile:
    return BackendProfile(
        name=name,
        executor="ibm",
        description=f"{description} (rule {rule})",
        source=f"rule:{rule}",
        shots=DEFAULT_SHOTS,
        options=options,
    )


RULES = (
    NameRule(
        "fake_<device>",
        "any fake device of qiskit_ibm_runtime.fake_provider, local testing mode, default options",
        fake_device_profile,
    ),
    NameRule(
        "ibm_<device>",
        "the real IBM Quantum device of that name; channel and instance from the saved account",
        ibm_device_profile,
    ),
)
