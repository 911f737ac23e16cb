"""``python -m engine`` is the same as ``options-engine``."""

from engine.service.cli import main

raise SystemExit(main())
