"""``python -m exprfusion`` runs the command line."""

from exprfusion.cli import main

main()
