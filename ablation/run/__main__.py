"""`python -m ablation.run`: see `ablation.run.cli`."""

import sys

from .cli import main

sys.exit(main())
