"""The benchmarks behind the published figures (``qdt bench ...``)."""
