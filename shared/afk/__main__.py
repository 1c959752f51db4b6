import sys

from afk.cli import main

sys.exit(main())
