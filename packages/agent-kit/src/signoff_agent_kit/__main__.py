"""`python -m signoff_agent_kit`: the `signoff-scan` command."""

from signoff_agent_kit.cli import main

main()
