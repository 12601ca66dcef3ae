from packrat.cli import main

raise SystemExit(main())
