import sys

from ebm_samplers.cli import main

sys.exit(main())
