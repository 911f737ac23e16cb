"""Search proposals: the same spec and results give the same trials, within the declared space."""

from __future__ import annotations

from engine.research.search import TPE_BATCH, TpeSearch, grid_trials, random_trials
from engine.research.spec import Param

SPACE = {"a": Param(low=0.1, high=0.9), "b": Param(values=[1, 2, 3]), "c": Param(low=1.0, high=100.0, log=True)}


def test_grid_tries_every_combination_first_parameter_slowest() -> None:
    trials = grid_trials({"x": Param(low=0.0, high=1.0, step=0.5), "y": Param(values=["p", "q"])})
    assert trials == [{"x": 0.0, "y": "p"}, {"x": 0.0, "y": "q"}, {"x": 0.5, "y": "p"}, {"x": 0.5, "y": "q"},
                      {"x": 1.0, "y": "p"}, {"x": 1.0, "y": "q"}]


def test_random_draws_are_seeded_distinct_and_inside_the_space() -> None:
    trials = random_trials(SPACE, 20, seed=3)
    assert trials == random_trials(SPACE, 20, seed=3) != random_trials(SPACE, 20, seed=4)
    assert len({repr(sorted(t.items())) for t in trials}) == 20
    assert all(0.1 <= t["a"] <= 0.9 and t["b"] in (1, 2, 3) and 1.0 <= t["c"] <= 100.0 for t in trials)


def _tpe_run(seed: int) -> list[dict[str, object]]:
    search = TpeSearch(SPACE, 12, seed, maximize=True)
    seen: list[dict[str, object]] = []
    while batch := search.ask():
        assert len(batch) <= TPE_BATCH
        for params in batch:
            search.tell(params, -(float(params["a"]) - 0.6) ** 2)  # type: ignore[arg-type]
        seen.extend(batch)
    return seen


def test_tpe_proposes_the_same_trials_for_the_same_seed_and_results() -> None:
    first = _tpe_run(5)
    assert len(first) == 12
    assert first == _tpe_run(5)
    assert all(0.1 <= float(t["a"]) <= 0.9 for t in first)  # type: ignore[arg-type]


def test_the_progress_bar_shows_units_and_time_left_on_a_terminal_only() -> None:
    import io

    from engine.research.cli import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        bar = ProgressBar(stream)
        bar.t0 -= 10.0  # ten seconds in
        bar(5, 10)
    assert "5/10 units" in tty.getvalue() and "0:10 left" in tty.getvalue()
    assert pipe.getvalue() == ""
