import sys

from cesar_worker.main import main

sys.exit(main())
