"""`python -m flows.cli`: the `dawnchorus` command."""

from flows.cli.main import main

raise SystemExit(main())
