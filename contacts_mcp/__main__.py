"""`python -m contacts_mcp` runs the `contacts-mcp` command."""

import sys

from .server.cli import main

sys.exit(main())
