"""``python -m shoprank`` = the ``shoprank`` console script."""

from shoprank.cli import main

main()
