"""``python -m nas_mnist`` runs the CLI."""

import sys

from nas_mnist.cli.main import main

if __name__ == "__main__":  # not when a spawned worker imports it
    sys.exit(main())
