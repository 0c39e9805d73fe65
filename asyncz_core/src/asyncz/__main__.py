"""``python -m asyncz``: the ``asyncz`` command line."""

from __future__ import annotations

from asyncz.cli import main

if __name__ == "__main__":
    main(prog_name="asyncz")
