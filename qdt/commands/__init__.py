"""CLI subcommands. Each module exposes ``register(subparsers)``; :mod:`qdt.cli` wires them."""
