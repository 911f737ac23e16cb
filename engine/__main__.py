"""``python -m engine`` is the same as ``options-engine``."""

from engine.cli import main

raise SystemExit(main())
