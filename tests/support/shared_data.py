"""Where the vendor data live: ``shared/data`` beside the checkout, or beside the main checkout for a worktree."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _main_checkout(repo: Path) -> Path:
    """The main checkout of ``repo`` (itself unless ``.git`` is a worktree's "gitdir: .../.git/worktrees/x")."""
    dot_git = repo / ".git"
    if not dot_git.is_file():
        return repo
    gitdir = Path(dot_git.read_text().split(":", 1)[1].strip())
    return gitdir.parents[2] if gitdir.parent.name == "worktrees" else repo


def shared_data() -> Path:
    """The shared data folder (it may be absent: tests skip with its path)."""
    here = REPO.parent / "shared" / "data"
    return here if here.exists() else _main_checkout(REPO).parent / "shared" / "data"


DATA = shared_data()
CBOE_SPX_EOD = DATA / "cboe_spx_eod_2019"
