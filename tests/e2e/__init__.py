"""End-to-end tests: the proxy as a real process between real clients and real backends."""
