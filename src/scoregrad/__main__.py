"""``python -m scoregrad ...``: the command line (so that ``torchrun -m scoregrad`` can launch it too)."""

from scoregrad.cli import main

raise SystemExit(main())
