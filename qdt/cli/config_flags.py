"""Command-line flags generated from a config dataclass, so that the help cannot drift from it.

:func:`add_config_flags` reads a frozen dataclass (``TrainConfig``) field by field and adds one
flag per field: its name (``steps_per_episode`` → ``--steps-per-episode``), its type (``int``,
``float``, ``str``, ``X | None``), its choices (a ``Literal[...]`` annotation), its help (the
field's ``metadata["help"]``; ``metadata["metavar"]`` may name its value) and the default the
help shows (the dataclass default itself, never a copy). ``exclude`` keeps fields off the command
line, ``rename`` gives a field another flag name, and ``combine`` gives several fields (with one
default) a single flag.

Every generated flag has argparse default ``None``, so :func:`config_changes` returns only the
fields the user typed: ``qdt train --resume`` compares exactly those with the run's own config.
The flag table travels on the parsed namespace (``args.config_flags``), so the handler needs
nothing but ``args``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from qdt.errors import QdtInputError

_TABLE = "config_flags"  # the namespace attribute that carries the flag table
_METAVARS: dict[type, str] = {int: "N", float: "X"}  # str flags show their name (--backend BACKEND)


@dataclass(frozen=True)
class ConfigFlag:
    """One generated flag: ``option`` (``--fading-db``), its argparse ``dest`` and the fields it sets."""

    option: str
    dest: str
    fields: tuple[str, ...]


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_type: type,
    *,
    exclude: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    combine: Mapping[str, tuple[str, ...]] | None = None,
    title: str | None = None,
    shown_defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[ConfigFlag, ...]:
    """Add a flag for every field of ``config_type`` not in ``exclude``, in field order.

    ``rename`` maps a field to its flag name without dashes (``{"channel_fading_db":
    "fading-db"}``); ``combine`` maps a flag name to the fields it sets together (``{"lr":
    ("lr_actor", "lr_critic")}``; they must share one default), listed where its first field is.
    With ``title``, the flags form their own section of the help. A renamed or combined flag's
    help names the fields it sets, for readers of config files and sweep specs.
    ``shown_defaults`` maps a case to the values its defaults hold (``{"on one instance": {...},
    "with --family": {...}}``): a flag whose field differs between the cases shows each case's
    default instead of the dataclass one.
    """
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    hints = typing.get_type_hints(config_type)
    rename = dict(rename or {})
    combine = dict(combine or {})
    excluded = set(exclude)
    grouped = [name for names in combine.values() for name in names]
    for role, names in (("exclude", excluded), ("rename", rename), ("combine", grouped)):
        unknown = sorted(set(names) - set(fields))
        if unknown:
            raise QdtInputError(role, f"fields of {config_type.__name__}", unknown[0])
    owner = {name: flag for flag, names in combine.items() for name in names}
    container: Any = parser.add_argument_group(title) if title else parser
    table: list[ConfigFlag] = []
    for name in fields:
        if name in excluded or (name in owner and combine[owner[name]][0] != name):
            continue
        flag = owner.get(name) or rename.get(name) or name.replace("_", "-")
        members = combine.get(flag, (name,))
        table.append(_add_flag(container, flag, [fields[m] for m in members], hints[name], shown_defaults))
    parser.set_defaults(**{_TABLE: tuple(table)})
    return tuple(table)


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user set on the command line (field → value), nothing else."""
    changes: dict[str, Any] = {}
    for flag in getattr(args, _TABLE):
        value = getattr(args, flag.dest)
        if value is not None:
            changes.update(dict.fromkeys(flag.fields, value))
    return changes


def option_of(args: argparse.Namespace, field_name: str) -> str:
    """The flag that sets ``field_name`` (``channel_fading_db`` → ``--fading-db``)."""
    for flag in getattr(args, _TABLE):
        if field_name in flag.fields:
            return flag.option
    return "--" + field_name.replace("_", "-")


def apply_changes(args: argparse.Namespace, config: Any) -> Any:
    """``config`` with the flags the user set; a refused value names the flag as it was typed.

    Configs name a bad field as ``--field-name`` (``--channel-fading-db``); for a renamed or
    combined flag that is not what the user typed, so the error is re-raised naming the flag
    (``--fading-db``, ``--lr``).
    """
    try:
        return dataclasses.replace(config, **config_changes(args))
    except QdtInputError as error:
        typed = option_of(args, error.field.removeprefix("--").replace("-", "_"))
        if not error.field.startswith("--") or typed == error.field:
            raise
        raise QdtInputError(typed, error.expected, error.got, error.fix) from error


def _add_flag(
    container: Any,
    flag: str,
    members: list[dataclasses.Field[Any]],
    hint: Any,
    shown_defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> ConfigFlag:
    first = members[0]
    defaults = {m.name: m.default for m in members}
    if first.default is dataclasses.MISSING:
        raise QdtInputError(first.name, "a field with a plain default", "none or a default_factory")
    if len(set(map(repr, defaults.values()))) != 1:
        raise QdtInputError(f"--{flag}", "fields with one default to share a flag", defaults)
    docs = [m.metadata.get("help") for m in members]
    if not all(docs):
        missing = next(m.name for m, doc in zip(members, docs) if not doc)
        raise QdtInputError(missing, 'a one-line doc in metadata["help"]', "none", "add it to the field")
    convert, choices = _argument_type(flag, hint)
    notes = [f"default: {_default_text(first, shown_defaults or {})}"]
    if [m.name for m in members] != [flag.replace("-", "_")]:
        notes.append(f"sets {' and '.join(m.name for m in members)}")
    text = f"{'; '.join(str(doc) for doc in docs)} ({'; '.join(notes)})"
    dest = flag.replace("-", "_")
    options: dict[str, Any] = {"dest": dest, "type": convert, "help": text.replace("%", "%%")}
    if choices is not None:
        options["choices"] = choices
    metavar = first.metadata.get("metavar") or _METAVARS.get(convert)
    if metavar and choices is None:
        options["metavar"] = metavar
    container.add_argument(f"--{flag}", **options)
    return ConfigFlag(f"--{flag}", dest, tuple(m.name for m in members))


def _argument_type(flag: str, hint: Any) -> tuple[type, tuple[Any, ...] | None]:
    """(argparse ``type``, ``choices``) of an annotation: int, float, str, a Literal, or X | None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        present = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(present) == 1:
            return _argument_type(flag, present[0])
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        kinds = {type(choice) for choice in choices}
        if len(kinds) == 1 and kinds <= {int, float, str}:
            return kinds.pop(), choices
    if hint in (int, float, str):
        return hint, None
    raise QdtInputError(f"--{flag}", "a field typed int, float, str, a Literal or X | None", hint)


def _default_text(field: dataclasses.Field[Any], cases: Mapping[str, Mapping[str, Any]]) -> str:
    """``field``'s default as the help shows it: the dataclass default, or where ``cases`` hold
    different values for it, each case's (``100 on one instance, 1000 with --family``)."""
    values = {case: values.get(field.name, field.default) for case, values in cases.items()}
    if len({repr(value) for value in values.values()}) <= 1:
        return _shown(next(iter(values.values()), field.default))
    return ", ".join(f"{_shown(value)} {case}" for case, value in values.items())


def _shown(default: Any) -> str:
    """A default as the help shows it: ``none``, ``0.001`` (floats by %g), ``2000``, ``soft``."""
    if default is None:
        return "none"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)
