from model.evaluate.digits import main

raise SystemExit(main())
