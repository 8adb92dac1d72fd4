from cbns.cli import main

raise SystemExit(main())
