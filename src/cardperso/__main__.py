"""``python -m cardperso``."""

from cardperso.cli.main import main

if __name__ == "__main__":
    main()
