"""``python -m nas_mnist`` runs the CLI."""

import sys

from nas_mnist.cli.main import main

sys.exit(main())
