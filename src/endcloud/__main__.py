from endcloud.cli import main

raise SystemExit(main())
