import sys

from tools.preflight.report import main

sys.exit(main())
