"""``python -m ibinn``: the ``ibinn`` command (:mod:`ibinn.cli`)."""

import sys

from .cli import main

sys.exit(main())
