"""Instance families: a generator setting that yields a fresh instance per episode and env copy.

A :class:`Family` is the generator's settings for N users and M servers (``qdt/problem/generator.py``:
the default model or, with ``tight``, the tight preset; any of its other settings as keys) plus an
optional seed. Text form (``qdt train --family``)::

    users=16,servers=4,tight=true,seed=3,tx_power_w=0.2,share_range=0.3:0.6

``users`` and ``servers`` are required; ``tight`` is a boolean (true/false/1/0/yes/no, default
false); ``seed`` a non-negative integer (default: the run's seed); the scalar settings are
``tx_power_w``, ``bandwidth_hz``, ``noise_power_dbm``, ``bs_radius_m``, ``user_radius_m``,
``min_distance_m``, ``shadowing_db``, ``spare_slots`` and the range settings ``data_bits_range``,
``capacity_range``, ``share_range``, ``deadline_slack_range`` take ``LOW:HIGH``. A key given
explicitly overrides the tight preset's value. Every value is checked when the family is built
(sizes through ``check_size``), so a bad family fails before any instance is drawn. A setting equal
to its default (under ``tight`` or not) is dropped: two families that draw the same instances
compare equal and describe themselves alike.

Seeding. Every instance is a pure function of (family, run seed, episode, copy):
``SeedSequence(entropy=family.seed or the run seed, spawn_key=(FAMILY_STREAM, TRAIN_KEY, episode,
copy))`` feeds ``generate_instance``. Nothing about the stream has to be saved for an exact resume;
episode e's copy k is redrawn from its numbers. Held-out instances (validation, "unseen" test
sets) use ``spawn_key=(FAMILY_STREAM, HELD_OUT_KEY, index)``. Distinct spawn keys give distinct
seed sequences, so a held-out instance is never a training draw by construction of the keys (the
first two key entries differ), whatever the episode, copy and index. ``FAMILY_STREAM`` is a large
constant, not a small index, so no ``SeedSequence.spawn`` of the run's own seed (spawn keys
0, 1, 2, ... appended one level at a time) reaches these keys.

With time-varying channels (``channel_fading_db`` > 0, ``qdt/problem/env.py``) the fading is drawn
on top of each drawn instance, per env copy, from that copy's own generator, exactly as it is drawn
on top of the one instance without a family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from qdt.errors import QdtInputError
from qdt.problem.generator import GeneratorConfig, generate_instance, tight_config
from qdt.problem.instance import Instance, check_size

FAMILY_STREAM = 0x716474_66  # "qdtf": the first spawn-key entry of every family draw
TRAIN_KEY = 0
"""Second spawn-key entry of a training draw: (FAMILY_STREAM, TRAIN_KEY, episode, copy)."""
HELD_OUT_KEY = 1
"""Second spawn-key entry of a held-out draw: (FAMILY_STREAM, HELD_OUT_KEY, index)."""

SettingValue = float | int | tuple[float, float]

# Generator settings a family may set, in GeneratorConfig's order, with what each must be.
_FLOAT_SETTINGS: dict[str, tuple[str, float, bool]] = {
    # key: (what it is, lower bound, whether the bound itself is allowed)
    "tx_power_w": ("transmit power p_i in W", 0.0, False),
    "bandwidth_hz": ("channel bandwidth B in Hz", 0.0, False),
    "noise_power_dbm": ("total noise power in dBm", -math.inf, False),
    "bs_radius_m": ("radius of the base-station circle in m", 0.0, True),
    "user_radius_m": ("radius of the users' disc in m", 0.0, True),
    "min_distance_m": ("smallest user-BS distance in m", 0.0, False),
    "shadowing_db": ("shadowing standard deviation in dB", 0.0, True),
}
_INT_SETTINGS = {"spare_slots": "spare user slots per server b_j (an integer >= 0)"}
_RANGE_SETTINGS: dict[str, tuple[str, float, bool]] = {
    "data_bits_range": ("D_i range in bits", 0.0, False),
    "capacity_range": ("C_j range in bits/s", 0.0, False),
    "share_range": ("share range s_ij of a server's capacity", 0.0, False),
    "deadline_slack_range": ("deadline slack range u_i", 0.0, True),
}
_SETTING_ORDER = tuple(
    name
    for name in GeneratorConfig.__dataclass_fields__
    if name in _FLOAT_SETTINGS or name in _INT_SETTINGS or name in _RANGE_SETTINGS
)
KNOWN_KEYS = ("users", "servers", "tight", "seed", *_SETTING_ORDER)
"""Every key a family accepts, in the canonical order of :meth:`Family.describe`."""

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_EXAMPLE = "users=16,servers=4,tight=true,seed=3"


@dataclass(frozen=True)
class Family:
    """N users, M servers, the tight preset or not, an optional seed, and generator settings.

    ``settings`` holds the other generator settings as ``(key, value)`` pairs in
    ``GeneratorConfig``'s order (a dict is accepted and normalised), so the family is hashable;
    :meth:`to_dict` makes it JSON. ``seed=None`` means "the run's seed" (:meth:`draw`).
    """

    users: int
    servers: int
    tight: bool = False
    seed: int | None = None
    settings: tuple[tuple[str, SettingValue], ...] = ()

    def __post_init__(self) -> None:
        values = _checked(
            {"users": self.users, "servers": self.servers, "tight": self.tight, "seed": self.seed},
            _settings_mapping(self.settings, "family.settings"),
            "family.",
        )
        for key in ("users", "servers", "tight", "seed", "settings"):
            object.__setattr__(self, key, values[key])

    # ---- the generator ------------------------------------------------------------------
    @property
    def setting_values(self) -> dict[str, SettingValue]:
        """The generator settings this family sets, beyond N, M and the preset."""
        return dict(self.settings)

    def generator_config(self) -> GeneratorConfig:
        """The generator settings of every instance of the family."""
        return _generator_config(self.users, self.servers, self.tight, self.setting_values)

    def draw(self, run_seed: int, episode: int, copy: int) -> Instance:
        """Episode ``episode``'s instance for env copy ``copy``: a pure function of its arguments."""
        for name, value in (("run_seed", run_seed), ("episode", episode), ("copy", copy)):
            _check_index(name, value)
        key = (FAMILY_STREAM, TRAIN_KEY, int(episode), int(copy))
        return self._generate(run_seed, key, {"stream": "train", "episode": int(episode), "copy": int(copy)})

    def draws(self, run_seed: int, episode: int, copies: int) -> list[Instance]:
        """Episode ``episode``'s instances for copies 0 … copies−1 (one per env copy)."""
        _check_index("copies", copies)
        return [self.draw(run_seed, episode, k) for k in range(copies)]

    def held_out(self, run_seed: int, index: int) -> Instance:
        """Held-out instance ``index``: never one of the training draws (module docstring)."""
        for name, value in (("run_seed", run_seed), ("index", index)):
            _check_index(name, value)
        key = (FAMILY_STREAM, HELD_OUT_KEY, int(index))
        return self._generate(run_seed, key, {"stream": "held_out", "index": int(index)})

    def _generate(self, run_seed: int, spawn_key: tuple[int, ...], where: dict[str, Any]) -> Instance:
        entropy = int(self.seed if self.seed is not None else run_seed)
        sequence = np.random.SeedSequence(entropy=entropy, spawn_key=spawn_key)
        instance = generate_instance(self.generator_config(), sequence)
        label = ", ".join(f"{k} {v}" for k, v in where.items() if k != "stream")
        meta = {
            **instance.meta,
            "family": {**self.to_dict(), **where, "entropy": entropy, "spawn_key": list(spawn_key)},
        }
        return replace(instance, name=f"family {self.describe()} ({where['stream']}: {label})", meta=meta)

    # ---- text and JSON ------------------------------------------------------------------
    def describe(self) -> str:
        """The canonical text, ``users=16,servers=4,tight=true,seed=3`` (``parse_family`` reads it)."""
        parts = [f"users={self.users}", f"servers={self.servers}"]
        if self.tight:
            parts.append("tight=true")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        parts.extend(f"{key}={_format_value(value)}" for key, value in self.settings)
        return ",".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``users``, ``servers``, ``tight``, ``seed`` (null: the run's) and the settings
        (ranges as ``[low, high]``)."""
        data: dict[str, Any] = {
            "users": self.users,
            "servers": self.servers,
            "tight": self.tight,
            "seed": self.seed,
        }
        data.update({key: list(v) if isinstance(v, tuple) else v for key, v in self.settings})
        return data

    @classmethod
    def from_dict(cls, data: Any, field: str = "family") -> Family:
        """The family :meth:`to_dict` wrote; a damaged one raises ``QdtInputError`` naming the key."""
        if not isinstance(data, Mapping):
            raise QdtInputError(field, f"an object with keys {', '.join(KNOWN_KEYS)}", type(data).__name__)
        for key in data:
            if key not in KNOWN_KEYS:
                raise QdtInputError(f"{field}.{key}", _known_keys_text(), "an unknown key", _fix_unknown())
        for key in ("users", "servers"):
            if key not in data:
                raise QdtInputError(
                    f"{field}.{key}", f"the number of {key}", "nothing", "write both users and servers"
                )
        plain = {key: data[key] for key in ("users", "servers", "tight", "seed") if key in data}
        plain.setdefault("tight", False)
        plain.setdefault("seed", None)
        settings = {key: data[key] for key in _SETTING_ORDER if key in data}
        values = _checked(plain, settings, f"{field}.")
        return cls(**values)


def parse_family(text: str, field: str = "--family") -> Family:
    """A family from ``key=value`` pairs separated by commas (module docstring).

    Unknown, duplicate or missing keys, bad values and sizes beyond the limits each raise one
    ``QdtInputError`` naming the key (an unknown key's lists every known key).
    """
    if not isinstance(text, str) or not text.strip():
        raise QdtInputError(field, f"key=value pairs such as {_EXAMPLE}", text, _fix_unknown())
    raw: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or not key or not value or "=" in value:
            raise QdtInputError(
                field, f"key=value pairs separated by commas, such as {_EXAMPLE}", part.strip() or text
            )
        if key not in KNOWN_KEYS:
            raise QdtInputError(f"{field} {key}", _known_keys_text(), "an unknown key", _fix_unknown())
        if key in raw:
            raise QdtInputError(f"{field} {key}", "each key once", f"{key} twice", "drop one of them")
        raw[key] = value
    for key in ("users", "servers"):
        if key not in raw:
            raise QdtInputError(
                f"{field} {key}", f"the number of {key}", "nothing", f"add {key}=..., e.g. {_EXAMPLE}"
            )
    plain: dict[str, Any] = {
        "users": _parse_int(raw["users"], f"{field} users", "an integer >= 1"),
        "servers": _parse_int(raw["servers"], f"{field} servers", "an integer >= 1"),
        "tight": _parse_bool(raw["tight"], f"{field} tight") if "tight" in raw else False,
        "seed": _parse_int(raw["seed"], f"{field} seed", "a non-negative integer") if "seed" in raw else None,
    }
    settings: dict[str, Any] = {}
    for key in _SETTING_ORDER:
        if key not in raw:
            continue
        where = f"{field} {key}"
        if key in _INT_SETTINGS:
            settings[key] = _parse_int(raw[key], where, _INT_SETTINGS[key])
        elif key in _RANGE_SETTINGS:
            settings[key] = _parse_range(raw[key], where, _RANGE_SETTINGS[key][0])
        else:
            settings[key] = _parse_float(raw[key], where, _FLOAT_SETTINGS[key][0])
    return Family(**_checked(plain, settings, f"{field} "))


# ---- validation ---------------------------------------------------------------------------
def _checked(plain: Mapping[str, Any], settings: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Validated, normalised constructor arguments of a Family; errors name ``prefix + key``."""
    users, servers = plain["users"], plain["servers"]
    for key, value in (("users", users), ("servers", servers)):
        if not _is_int(value) or value < 1:
            raise QdtInputError(prefix + key, "an integer >= 1", value)
    try:
        check_size(int(users), int(servers), prefix + "users", prefix + "servers")
    except QdtInputError as error:
        if error.field not in (prefix + "users", prefix + "servers"):  # N·M: name both keys once
            raise QdtInputError(prefix + "users/servers", error.expected, error.got, error.fix) from None
        raise
    tight = plain["tight"]
    if not isinstance(tight, (bool, np.bool_)):
        raise QdtInputError(prefix + "tight", "true or false", tight)
    seed = plain["seed"]
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise QdtInputError(prefix + "seed", "a non-negative integer (or none: the run's seed)", seed)
    given: dict[str, SettingValue] = {}
    for key, value in settings.items():
        if key not in _SETTING_ORDER:
            raise QdtInputError(prefix + key, _known_keys_text(), "an unknown key", _fix_unknown())
        given[key] = _checked_setting(key, value, prefix + key)
    base = asdict(tight_config(1, 1) if tight else GeneratorConfig())
    kept = tuple((key, given[key]) for key in _SETTING_ORDER if key in given and given[key] != base[key])
    _generator_config(int(users), int(servers), bool(tight), dict(kept))  # whatever else it checks
    return {
        "users": int(users),
        "servers": int(servers),
        "tight": bool(tight),
        "seed": None if seed is None else int(seed),
        "settings": kept,
    }


def _checked_setting(key: str, value: Any, where: str) -> SettingValue:
    if key in _INT_SETTINGS:
        if not _is_int(value) or value < 0:
            raise QdtInputError(where, _INT_SETTINGS[key], value)
        return int(value)
    if key in _RANGE_SETTINGS:
        what, low_bound, inclusive = _RANGE_SETTINGS[key]
        expected = f"{what}: two finite numbers LOW:HIGH, LOW <= HIGH, {_bound_text(low_bound, inclusive)}"
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 2:
            raise QdtInputError(where, expected, value)
        low, high = value
        if not (_is_number(low) and _is_number(high)) or not low <= high:
            raise QdtInputError(where, expected, value)
        if not (_within(float(low), low_bound, inclusive) and math.isfinite(float(high))):
            raise QdtInputError(where, expected, value)
        return (float(low), float(high))
    what, low_bound, inclusive = _FLOAT_SETTINGS[key]
    if not _is_number(value) or not _within(float(value), low_bound, inclusive):
        raise QdtInputError(where, f"{what}: a finite number, {_bound_text(low_bound, inclusive)}", value)
    return float(value)


def _generator_config(
    users: int, servers: int, tight: bool, settings: dict[str, SettingValue]
) -> GeneratorConfig:
    if tight:
        return tight_config(users, servers, **settings)
    return GeneratorConfig(users=users, servers=servers, **settings)  # type: ignore[arg-type]


def _settings_mapping(settings: Any, where: str) -> Mapping[str, Any]:
    if isinstance(settings, Mapping):
        return settings
    try:
        pairs = dict(settings)
    except (TypeError, ValueError):
        raise QdtInputError(where, "(key, value) pairs or a dict of generator settings", settings) from None
    if len(pairs) != len(settings):
        raise QdtInputError(where, "each key once", settings)
    return pairs


def _check_index(name: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise QdtInputError(name, "a non-negative integer", value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def _within(value: float, bound: float, inclusive: bool) -> bool:
    return math.isfinite(value) and (value >= bound if inclusive else value > bound)


def _bound_text(bound: float, inclusive: bool) -> str:
    if bound == -math.inf:
        return "any value"
    return f"{'>=' if inclusive else '>'} {bound:g}"


def _known_keys_text() -> str:
    return "one of the keys " + ", ".join(KNOWN_KEYS)


def _fix_unknown() -> str:
    return f"write key=value pairs such as {_EXAMPLE}; ranges as key=LOW:HIGH (e.g. share_range=0.3:0.6)"


# ---- text values ----------------------------------------------------------------------------
def _parse_int(text: str, where: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise QdtInputError(where, expected, text) from None


def _parse_float(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise QdtInputError(where, f"{what}: a number", text) from None


def _parse_bool(text: str, where: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise QdtInputError(where, "true or false (also 1/0, yes/no)", text)


def _parse_range(text: str, where: str, what: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return (float(low), float(high))
    except ValueError:
        raise QdtInputError(where, f"{what} as LOW:HIGH, e.g. 0.3:0.6", text) from None


def _format_value(value: SettingValue) -> str:
    if isinstance(value, tuple):
        return f"{value[0]!r}:{value[1]!r}"
    return repr(value)
