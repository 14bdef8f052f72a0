"""`qdt train`'s flags are generated from TrainConfig: names, meanings, help defaults, resume check."""

import argparse
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

import pytest

from qdt.cli.config_flags import add_config_flags, apply_changes, config_changes, option_of
from qdt.cli.main import build_parser, main
from qdt.errors import QdtInputError
from qdt.rl.config import DEFAULT_RECIPE, FAMILY_DEFAULTS, FAMILY_RECIPE, RECIPES, TrainConfig

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
NOT_FLAGS = {
    "updates_per_episode",
    "warmup_transitions",
    "hidden",
    "reward_scale",
    "logit_penalty",
    "ppo_clip",
}

# Every option `qdt train` had before its flags were generated, with a value and the fields it sets.
OLD_FLAGS = {
    "--agent": ("quantum", {"agent": "quantum"}),
    "--layers": ("3", {"layers": 3}),
    "--backend": ("density", {"backend": "density"}),
    "--noise": ("depol-1e-3", {"noise": "depol-1e-3"}),
    "--shots": ("64", {"shots": 64}),
    "--episodes": ("40", {"episodes": 40}),
    "--seed": ("5", {"seed": 5}),
    "--steps-per-episode": ("4", {"steps_per_episode": 4}),
    "--batch-size": ("32", {"batch_size": 32}),
    "--replay-size": ("500", {"replay_size": 500}),
    "--gamma": ("0.9", {"gamma": 0.9}),
    "--lr": ("0.005", {"lr_actor": 0.005, "lr_critic": 0.005}),
    "--lr-quantum": ("0.03", {"lr_quantum": 0.03}),
    "--gradient-steps": ("2", {"gradient_steps": 2}),
    "--target-update": ("hard", {"target_update": "hard"}),
    "--tau": ("0.05", {"tau": 0.05}),
    "--exploration": ("flip", {"exploration": "flip"}),
    "--decode": ("round", {"decode": "round"}),
    "--explore-start": ("0.3", {"explore_start": 0.3}),
    "--explore-end": ("0.02", {"explore_end": 0.02}),
    "--explore-fraction": ("0.5", {"explore_fraction": 0.5}),
    "--fading-db": ("3", {"channel_fading_db": 3.0}),
    "--checkpoint-every": ("7", {"checkpoint_every": 7}),
    "--threads": ("2", {"threads": 2}),
}
# Flags added with their TrainConfig fields since (issue 13: recipes and the levers of scaling).
NEW_FLAGS = {
    "--recipe": ("v1", {"recipe": "v1"}),
    "--observation": ("features", {"observation": "features"}),
    "--sharing": ("shared", {"sharing": "shared"}),
    "--envs": ("4", {"envs": 4}),
    "--reward-scaling": ("bound", {"reward_scaling": "bound"}),
    "--torch-device": ("cpu", {"torch_device": "cpu"}),  # issue 14: where a run computes
    "--family": ("users=4,servers=2", {"family": "users=4,servers=2"}),  # issue 17
    "--learner": ("maddpg", {"learner": "maddpg"}),  # issue 13: v3 learns by policy gradient
    "--ppo-credit": ("episode", {"ppo_credit": "episode"}),  # issue 13: whose reward rates a score
    "--imitation-episodes": ("0", {"imitation_episodes": 0}),  # issue 17: family runs learn from the MILP
    "--start": ("greedy", {"start": "greedy"}),  # issue 17: rollouts improve greedy's placement
    "--label-gap": ("0", {"label_gap": 0.0}),  # issue 17: cheaper labels (only with --decode construct)
    "--construct-order": (
        "sure",
        {"construct_order": "sure"},
    ),  # issue 17: which user a construction places next
    "--construct-guard": ("none", {"construct_guard": "none"}),  # issue 17: constructions kept completable
    "--input-scaling": ("affine", {"input_scaling": "affine"}),  # issue 13: v5's trained input scaling
    "--label-smoothing": ("0", {"label_smoothing": 0.0}),  # issue 13: v5's imitation keeps logits bounded
}


def _train_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


def _option_help(capsys, monkeypatch) -> dict[str, str]:
    """`qdt train --help`, parsed into option → its help text on one line."""
    monkeypatch.setenv("COLUMNS", "100")  # wrapped lines are joined below
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    blocks: dict[str, str] = {}
    option = None
    for line in capsys.readouterr().out.splitlines():
        start = re.match(r"^  (--[a-z-]+)(.*)$", line)
        if start:
            option = start.group(1)
            blocks[option] = start.group(2)
        elif option is not None and line.startswith("    "):
            blocks[option] += " " + line
        else:
            option = None
    return {name: " ".join(text.split()) for name, text in blocks.items()}


def _shown_default(help_text: str) -> str:
    found = re.search(r"\(default: ([^;)]+)[;)]", help_text)
    assert found, help_text
    return found.group(1)


def test_every_field_has_a_doc_and_every_other_field_is_a_flag():
    assert all(f.metadata.get("help") for f in FIELDS.values())
    flags = _train_args().config_flags
    generated = {name for flag in flags for name in flag.fields}
    assert generated == set(FIELDS) - NOT_FLAGS
    assert {flag.option for flag in flags} == set(OLD_FLAGS) | set(NEW_FLAGS)


def _text(value: object) -> str:
    """A default as --help writes it: none, %g for floats, else as is."""
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def test_help_shows_each_flags_default_on_one_instance_and_with_family_and_doc(capsys, monkeypatch):
    """A flag shows its default; where qdt train's two default recipes (v5 on one instance, v2 and
    the family settings with --family) differ, both, named."""
    one = {**RECIPES[DEFAULT_RECIPE], "recipe": DEFAULT_RECIPE}
    family = {**RECIPES[FAMILY_RECIPE], **FAMILY_DEFAULTS, "recipe": FAMILY_RECIPE}
    helps = _option_help(capsys, monkeypatch)
    both = 0
    for flag in _train_args().config_flags:
        text = helps[flag.option]
        spec = FIELDS[flag.fields[0]]
        for name in flag.fields:
            assert " ".join(FIELDS[name].metadata["help"].split()) in text, (flag.option, text)
        values = [case.get(spec.name, spec.default) for case in (one, family)]
        shown = _shown_default(text)
        if values[0] == values[1]:
            assert shown == _text(values[0]), (flag.option, shown, values)
        else:
            both += 1
            assert shown == f"{_text(values[0])} on one instance, {_text(values[1])} with --family"
    assert both >= 10  # v5 and v2 differ in learner, decode, observation, episodes, envs, ...
    assert _shown_default(helps["--lr-quantum"]) == "0.01"  # the drift this replaced: "as --lr"
    assert "sets lr_actor and lr_critic" in helps["--lr"]
    assert "sets channel_fading_db" in helps["--fading-db"]
    assert helps["--exploration"].startswith("{flip,gaussian,paper,gumbel} exploration noise")


def test_help_follows_a_changed_default(capsys, monkeypatch):
    monkeypatch.setattr(FIELDS["checkpoint_every"], "default", 1234)  # a field no recipe sets
    monkeypatch.setitem(RECIPES[DEFAULT_RECIPE], "episodes", 77)  # a recipe's value
    monkeypatch.setitem(RECIPES[DEFAULT_RECIPE], "lr_actor", 2e-4)
    helps = _option_help(capsys, monkeypatch)
    assert _shown_default(helps["--checkpoint-every"]) == "1234"
    assert _shown_default(helps["--episodes"]) == "77 on one instance, 1000 with --family"
    assert _shown_default(helps["--lr"]) == "0.0002 on one instance, 0.001 with --family"


def test_old_flags_all_accepted_with_their_meaning():
    flags = {**OLD_FLAGS, **NEW_FLAGS}
    argv = [word for option, (value, _) in flags.items() for word in (option, value)]
    args = _train_args(*argv)
    expected = {name: value for _, fields in flags.values() for name, value in fields.items()}
    assert config_changes(args) == expected
    config = apply_changes(args, TrainConfig())
    assert {name: getattr(config, name) for name in expected} == expected
    assert config.hidden == FIELDS["hidden"].default  # untouched fields keep the default


def test_lr_sets_both_rates_and_fading_db_names_channel_fading_db():
    args = _train_args("--lr", "0.004", "--fading-db", "2.5")
    assert config_changes(args) == {"lr_actor": 0.004, "lr_critic": 0.004, "channel_fading_db": 2.5}
    config = apply_changes(args, TrainConfig())
    assert (config.lr_actor, config.lr_critic, config.channel_fading_db) == (0.004, 0.004, 2.5)
    assert config.lr_quantum == 1e-2
    assert option_of(args, "lr_critic") == "--lr" and option_of(args, "channel_fading_db") == "--fading-db"
    assert config_changes(_train_args()) == {}  # nothing typed, nothing changed


def test_choices_types_and_non_flags_are_enforced(capsys):
    for argv in (["--decode", "nearest"], ["--episodes", "1.5"], ["--hidden", "8"], ["--lr-critic", "1"]):
        with pytest.raises(SystemExit) as stop:
            _train_args(*argv)
        assert stop.value.code == 2
        assert argv[0] in capsys.readouterr().err


def test_a_refused_value_names_the_flag_typed(tmp_path, capsys):
    for argv, named in ((["--fading-db", "-1"], "--fading-db:"), (["--lr", "0"], "--lr:")):
        assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *argv]) == 2
        assert capsys.readouterr().err.startswith(f"qdt train: error: {named} expected")
    assert not (tmp_path / "run" / "config.json").exists()


def test_resume_refuses_a_changed_generated_flag(tmp_path, capsys):
    run = tmp_path / "run"
    start = [
        "train",
        "--preset",
        "paper",
        "--agent",
        "classical",
        "--episodes",
        "3",
        "--steps-per-episode",
        "2",
    ]
    assert main([*start, "--lr", "0.002", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    refused = (
        (["--lr", "0.003"], "--lr: expected the run's own value 0.002 when resuming, got 0.003"),
        (["--fading-db", "1"], "--fading-db: expected the run's own value 0.0 when resuming, got 1.0"),
        # started without --recipe on one instance: v5, which constructs
        (["--decode", "round"], "--decode: expected the run's own value 'construct' when resuming"),
    )
    for argv, message in refused:
        assert main(["train", "--resume", str(run), "--no-progress", *argv]) == 2
        assert message in capsys.readouterr().err
    same = ["--lr", "0.002", "--episodes", "3", "--agent", "classical"]
    assert main(["train", "--resume", str(run), "--no-progress", "--json", *same]) == 0


@dataclass(frozen=True)
class _Toy:
    mode: Literal["a", "b"] = field(default="a", metadata={"help": "the mode"})
    size: int | None = field(default=None, metadata={"help": "a size; none: automatic", "metavar": "S"})
    rate: float = field(default=0.5, metadata={"help": "a rate"})
    hidden: int = field(default=3, metadata={"help": "not a flag"})


def test_generator_on_a_small_config():
    parser = argparse.ArgumentParser()
    flags = add_config_flags(parser, _Toy, exclude=("hidden",), rename={"rate": "r"})
    assert [(f.option, f.fields) for f in flags] == [
        ("--mode", ("mode",)),
        ("--size", ("size",)),
        ("--r", ("rate",)),
    ]
    args = parser.parse_args(["--mode", "b", "--r", "0.25"])
    assert apply_changes(args, _Toy()) == _Toy(mode="b", rate=0.25)
    text = " ".join(parser.format_help().split())
    assert "--size S a size; none: automatic (default: none)" in text
    assert "--r X a rate (default: 0.5; sets rate)" in text
    assert "--hidden" not in text


@dataclass(frozen=True)
class _Bad:
    flag: bool = field(default=False, metadata={"help": "a switch"})
    left: float = field(default=1.0, metadata={"help": "left"})
    right: float = field(default=2.0, metadata={"help": "right"})
    undocumented: int = 0


@pytest.mark.parametrize(
    "options, named",
    [
        ({"exclude": ("left", "right", "undocumented")}, "--flag"),  # bool is not supported
        ({"exclude": ("flag", "undocumented"), "combine": {"lr": ("left", "right")}}, "--lr"),
        ({"exclude": ("flag", "left", "right")}, "undocumented"),
        ({"exclude": ("nope",)}, "exclude"),
        ({"rename": {"nope": "x"}}, "rename"),
    ],
)
def test_generator_refuses_what_it_cannot_express(options, named):
    with pytest.raises(QdtInputError) as error:
        add_config_flags(argparse.ArgumentParser(), _Bad, **options)
    assert error.value.field == named
