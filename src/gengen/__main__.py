"""``python -m gengen``: the command line (what ``torchrun ... -m gengen`` starts on every rank)."""

from gengen.cli import main

if __name__ == "__main__":
    main()
