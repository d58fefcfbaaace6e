"""`python -m contacts_mcp.server` runs the `contacts-mcp` command."""

import sys

from .cli import main

sys.exit(main())
