import sys

from rllib_softqmix.cli import main

sys.exit(main())
