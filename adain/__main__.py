"""``python -m adain``: the same command line as the ``adain`` script."""

from adain.cli import main

if __name__ == "__main__":
    main()
