import sys

from ministack.cli import main

sys.exit(main())
