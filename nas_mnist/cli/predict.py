"""``nas-mnist predict MODEL_DIR FILE...``: classify your own digit images with an exported model.

Prints one line per file (or, with ``--format json``, a JSON list of ``{"file", "label",
"probability"}``). A file that is not an image, or is too large (``images.MAX_IMAGE_PIXELS``),
is named on stderr in one line; the other files are still classified and printed, and the
command exits with status 2 at the end. An export whose files differ from its
``manifest.json`` is refused before it is loaded (exit 2, one line).
"""

from __future__ import annotations

import argparse
import json
import sys

from nas_mnist.cli.arguments import EXIT_OK, EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR",
                        help="an export folder written by 'nas-mnist export --out DIR'")
    parser.add_argument(
        "files", metavar="FILE", nargs="+",
        help="PNG, JPEG or .npy images of one digit each, any size; dark digits on a light "
        "background are inverted (MNIST's digits are light on dark)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text",
        help='text: one line per file (default); json: a list of {"file", "label", '
        '"probability"} on stdout',
    )


def run(args: argparse.Namespace) -> int:
    from nas_mnist.exporting.predict import predict

    predictions = predict(args.model_dir, args.files, skip_bad=True)
    good = [p for p in predictions if p.error is None]
    for bad in predictions:
        if bad.error is not None:
            print(f"nas-mnist predict: error: {bad.error}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([p.to_dict() for p in good], indent=2))
    else:
        for p in good:
            print(f"{p.file}: {p.label} (probability {p.probability:.3f}"
                  + (", inverted: dark digit on a light background" if p.inverted else "")
                  + ")")
    return EXIT_OK if len(good) == len(predictions) else EXIT_USAGE
