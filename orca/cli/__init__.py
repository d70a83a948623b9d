"""The `orca` command line. `main.py` builds the parser; each command lives in its own module."""
