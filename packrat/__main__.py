from packrat.cli.main import main

raise SystemExit(main())
