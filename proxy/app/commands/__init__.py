"""Sub-commands of the ``format-proxy`` CLI; see ``proxy.app.cli``."""
