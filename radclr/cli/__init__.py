"""The `radclr` command line (see main.py)."""
