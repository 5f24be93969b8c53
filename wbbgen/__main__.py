import sys

from wbbgen.cli import main

sys.exit(main())
