"""``python -m explorer`` runs the ``posembed`` command line."""

from explorer.cli import main

if __name__ == "__main__":
    main()
