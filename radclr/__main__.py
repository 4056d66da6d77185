import sys

from radclr.cli.main import main

sys.exit(main())
