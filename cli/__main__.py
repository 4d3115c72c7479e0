"""`python -m cli ...` is `cellblock ...`."""

from cli.main import main

raise SystemExit(main())
