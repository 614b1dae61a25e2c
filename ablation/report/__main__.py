"""`python -m ablation.report`: see `ablation.report.cli`."""

import sys

from .cli import main

sys.exit(main())
