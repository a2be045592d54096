"""`python -m goldwire.cli`: the same as the `goldwire` command."""

import sys

from goldwire.cli.main import main

sys.exit(main())
