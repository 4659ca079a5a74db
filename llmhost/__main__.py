import sys

from llmhost.cli import main

sys.exit(main())
