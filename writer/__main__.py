import sys

from writer.cli.main import main

sys.exit(main())
