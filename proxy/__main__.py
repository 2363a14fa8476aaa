import sys

from proxy.app.cli import main

sys.exit(main())
