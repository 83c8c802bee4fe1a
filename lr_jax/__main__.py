from lr_jax.cli import main

raise SystemExit(main())
