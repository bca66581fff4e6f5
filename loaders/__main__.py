"""`python -m loaders` runs the ciq command line."""

from loaders.cli import main

raise SystemExit(main())
