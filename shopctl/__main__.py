"""``python -m shopctl`` = the ``shoprank`` console script."""

from shopctl.cli import main

main()
