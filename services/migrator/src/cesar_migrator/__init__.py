"""cesar-migrate: the command line and container around cesar_core.migrations."""
