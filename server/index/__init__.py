"""The contact index: a local, searchable copy of Cometly's contacts (see `base`)."""
