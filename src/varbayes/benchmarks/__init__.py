"""Benchmarks run by ``varbayes benchmark``: UCI quality (:mod:`.uci`) and speed (:mod:`.speed`)."""

__all__: list[str] = []
