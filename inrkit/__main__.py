"""``python -m inrkit``: the command line."""

from inrkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
