"""Extra CLI commands, each in its own module and registered at the bottom of cli.py."""
