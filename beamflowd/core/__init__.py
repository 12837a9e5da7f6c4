"""The deterministic core: the replicated state machine, the log contract, definitions and their rules.

Nothing here reads a clock, draws a random number or does I/O (import-linter enforces it, see
``pyproject.toml``): every replica must compute the same thing from the same log, and hypothesis tests
drive these modules directly, without a cluster.
"""
