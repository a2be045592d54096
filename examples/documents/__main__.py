"""`python -m examples.documents [--host H] [--port P]`: run the app with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from examples.documents.app import Settings, create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.documents",
                                     description="The Goldwire documents example app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    uvicorn.run(create_app(Settings.from_env()), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
