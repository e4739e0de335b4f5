"""`local-valohai serve`: start the server, print where it listens and the token, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

import uvicorn

from .app import serving_app
from .settings import Settings

SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits (CPython's default: 0.005)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="local-valohai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Run the Valohai-compatible API server")
    serve.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=8000, help="Port (0 = pick a free one)")
    serve.add_argument(
        "--data-dir",
        default=os.environ.get("LOCAL_VALOHAI_DATA_DIR", ".local-valohai"),
        help="Where the database, the file store and execution directories live",
    )
    serve.add_argument("--workers", type=int, default=None, help="Parallel executions (default: CPU count)")
    serve.add_argument(
        "--token", default=None, help="API token (default: $LOCAL_VALOHAI_TOKEN, else DATA_DIR/token, generated once)"
    )
    serve.add_argument("--access-log", action="store_true", help="Log each request (never the headers)")
    serve.add_argument("--log-level", default="warning")
    return parser


def serve(args: argparse.Namespace) -> None:
    os.umask(0o077)  # everything the server writes (database, store, logs, execution folders) is owner-only
    settings = Settings.load(args.data_dir, host=args.host, port=args.port, workers=args.workers, token=args.token)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stalls
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = serving_app(settings)
    # The event loop gives up the GIL at every socket and SQLite call and must win it back from the runner's
    # threads; 1 ms instead of CPython's 5 ms switch interval shortens each wait: +8% GETs/s while no-op
    # executions run, executions/s not lower (medians of 5 alternating runs, bench/README.md).
    sys.setswitchinterval(SWITCH_INTERVAL)
    config = uvicorn.Config(
        app,
        http="httptools",  # pinned in pyproject.toml; h11 (pure Python) cost ~35% of the CPU of a GET (bench/README.md)
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    print(f"local-valohai listening on http://{host}:{port}", flush=True)
    print(f"token: {settings.token}", flush=True)
    print(f"data dir: {settings.data_dir} (workers: {settings.workers})", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises SIGINT after its graceful shutdown; that is a clean stop
        pass
    print("local-valohai stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        serve(args)


if __name__ == "__main__":
    main(sys.argv[1:])
