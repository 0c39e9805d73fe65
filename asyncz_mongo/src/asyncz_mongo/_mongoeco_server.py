"""Run a mongoeco wire-protocol server in the foreground until SIGTERM or SIGINT.

mongoeco has no console script for its wire server, so
:class:`asyncz_mongo.testing.TemporaryMongoeco` runs this file, by path, with the Python of
the mongoeco virtual environment
(``scripts/setup-mongoeco`` in the asyncz repository):

    .venv-mongoeco/bin/python .../asyncz_mongo/_mongoeco_server.py --port 27217 --data x.sqlite3

With ``--data`` the documents live in that SQLite file and survive a restart of the server;
without it they live in memory. The line ``ready <uri>`` on stdout says the server listens.
This file runs under the mongoeco interpreter only (Python >= 3.13); it imports nothing of
asyncz.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


async def serve(host: str, port: int, data: str | None) -> None:
    from mongoeco import __version__  # type: ignore[import-not-found]
    from mongoeco.engines import MemoryEngine, SQLiteEngine  # type: ignore[import-not-found]
    from mongoeco.wire import AsyncMongoEcoProxyServer  # type: ignore[import-not-found]

    engine = SQLiteEngine(data) if data else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
    address = await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {address.uri} mongoeco {__version__}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", help="SQLite file for the documents (default: in memory)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
