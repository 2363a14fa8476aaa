"""Sub-commands of the ``format-proxy`` CLI; see ``proxy.cli``."""
