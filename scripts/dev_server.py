"""``make dev``: serve every function on one port with embedded defaults."""

from __future__ import annotations

import argparse
import os
import sys

from devtools.local_server import LocalServer, prepare_container, shut_down, stop_on_signals
from shared.bootstrap import Container
from shared.config import ConfigError, load_settings
from shared.observability.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    os.environ["PORT"] = str(args.port)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    container: Container | None = None
    server: LocalServer | None = None
    with stop_on_signals():
        try:
            container = prepare_container(settings)
            server = LocalServer(args.port)
            print(f"Reel Content dev server on {server.url} (Ctrl-C to stop)", file=sys.stderr)
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            shut_down(container, server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
