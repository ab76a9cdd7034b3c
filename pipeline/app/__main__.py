"""``python -m pipeline.app``: the ``vicocam`` command (e.g. under torchrun)."""

import sys

from pipeline.app.cli import main

sys.exit(main())
