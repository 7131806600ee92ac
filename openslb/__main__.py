import sys

from openslb.cli import main

sys.exit(main())
