"""contacts-mcp: an MCP server of typed tools over a company's contacts (Cometly, HighLevel, Clemta).

This is the one name the distribution claims in site-packages. The code lives at the top of the
repository, in `server/` and `tools/`; the wheel installs them as `contacts_mcp.server` and
`contacts_mcp.tools` (the `sources` table in pyproject.toml), and in a checkout `server` and `tools`
beside this file are symlinks to them, so the code has one import name everywhere. Inside the two
packages imports are relative; from outside (tests, benches) they go through `contacts_mcp`.
"""
