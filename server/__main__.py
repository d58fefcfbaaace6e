"""`python -m server` runs the `contacts-mcp` command."""

import sys

from server.cli import main

sys.exit(main())
