"""`python -m ingest.cli …`: the same as the `logship` script (ingest workers start this way)."""

import sys

from ingest.cli.main import main

sys.exit(main())
