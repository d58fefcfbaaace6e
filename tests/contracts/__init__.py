"""The vendors' own contracts, checked against what the product sends and what the sandbox answers.

`checks` loads them (HighLevel's and Clemta's OpenAPI files, Cometly's JSON Schema in `cometly/`)
and judges one request or answer; `recording` hooks every test of the suite into it (see
`tests/conftest.py`); `examples.full_example` builds a body with every documented property.
"""
