"""The ``qdt`` command line: :mod:`qdt.cli.main` builds the parser; one module per group of
subcommands, each with ``register(subparsers)``."""
