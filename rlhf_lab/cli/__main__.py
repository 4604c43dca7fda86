"""`python -m rlhf_lab.cli ...`: the same command line as `rlhf-lab ...`."""
from rlhf_lab.cli.main import main

raise SystemExit(main())
