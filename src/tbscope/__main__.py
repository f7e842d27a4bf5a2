"""``python -m tbscope`` runs the ``tbscope`` command."""

import sys

from tbscope.cli import main

sys.exit(main())
