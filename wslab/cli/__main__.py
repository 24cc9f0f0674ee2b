"""``python -m wslab.cli``: the same command line as the ``wslab`` script."""

from wslab.cli import main

main()
