"""`afk` (the installed command) and `python -m afk`."""

import sys


def main() -> int:
    if sys.argv[1:2] == ["dev"]:
        # `afk dev`: its embedded DynamoDB starts before anything else is imported
        # here (afk/local/aws.py); the gateway takes it once it has read its settings.
        from afk.local.aws import prestart

        prestart()
    from afk.cli import main as cli

    return cli()


if __name__ == "__main__":
    sys.exit(main())
