"""``python -m wslab``: the same command line as the ``wslab`` script."""

from wslab.cli import main

main()
