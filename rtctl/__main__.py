from rtctl.cli.app import main

raise SystemExit(main())
