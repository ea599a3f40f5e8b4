"""`python -m otel_sysops`."""

import sys

from .cli import main

sys.exit(main())
