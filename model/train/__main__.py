from model.train.recipe import main

raise SystemExit(main())
