import sys

from cesar_migrator.cli import main

sys.exit(main())
