"""``python -m hub push ...`` / ``python -m hub publish-original ...``."""

from hub.cli import app

if __name__ == "__main__":
    app()
