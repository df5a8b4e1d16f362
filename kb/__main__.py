"""``python -m kb`` -> ``kb.cli.main()``."""
import sys

from kb.cli import main

sys.exit(main())
