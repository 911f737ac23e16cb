"""Research at scale: a library of days, parameter sweeps and walk-forward runs over them (docs/research.md)."""
