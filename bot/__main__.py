"""Command line: `python -m bot serve | worker | dev | richmenu | users | check-rules` (also installed as `shokai`)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import CommandLine, ConfigError, Settings, process_env, whole_number
from bot.infra import event_loop
from bot.web.listen import bound_port, listening_socket
from rewards.rules import RulesError


def _port(raw: str) -> int:
    """--port / --console-port: 0 (any free port) to 65535."""
    try:
        return whole_number(raw, "the port", 0, 65_535, "a port number from 0 to 65535")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser(defaults: CommandLine) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shokai", description="Shokai: a LINE referral and rewards bot")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the webhook, pages and admin API (and the worker, unless --no-worker)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=_port, default=defaults.port)
    serve.add_argument("--no-worker", action="store_true", help="run the web side only (workers run apart)")
    commands.add_parser("worker", help="an event worker alone (needs REDIS_URL)")
    dev = commands.add_parser("dev", help="local mode: embedded Redis, the bot and the LINE simulator console")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=_port, default=defaults.port)
    dev.add_argument("--console-port", type=_port, default=defaults.console_port)
    commands.add_parser("richmenu", help="create or update the rich menus from assets/richmenu (idempotent)")
    check = commands.add_parser("check-rules", help="read a rules file and print what the checks found "
                                                    "(the premiums law, [legal]); exit 2 when it cannot load")
    check.add_argument("path", nargs="?", default=None, help="the rules file (default: the shipped one)")
    from bot.web.dashboard.cli import add_parser as add_users

    add_users(commands)
    return parser


def _check_rules(path: str | None) -> int:
    """`check-rules`: the file's mistakes (exit 2), or each premiums-law finding ([legal] premiums = "warn")."""
    from bot.config import ASSETS
    from rewards.rules import load_rules

    rules = load_rules(Path(path) if path else ASSETS / "rules.toml")
    for warning in rules.warnings:
        print(f"warning: {warning}")
    print(f"rules ok ({len(rules.warnings)} warning{'' if len(rules.warnings) == 1 else 's'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        defaults = CommandLine.from_env()
    except ConfigError as exc:
        print(f"shokai: {exc}", file=sys.stderr)
        return 2
    args = _parser(defaults).parse_args(argv)
    try:
        if args.command == "check-rules":  # needs no environment: a shop checks its file before deploying it
            logging.basicConfig(level=logging.ERROR)  # the findings are printed once, not logged as well
            return _check_rules(args.path)
        if args.command == "dev":
            from linesim.dev import run_dev

            logging.basicConfig(level=defaults.log_level,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            event_loop.run(run_dev(args.host, args.port, args.console_port, process_env()))
            return 0
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.command == "serve":
            from bot.app import create_app
            from bot.web import server

            app = create_app(settings, run_worker=not args.no_worker)
            # bound before anything starts: a port in use is one line, not a traceback after the embedded
            # Redis and the worker were started
            sock = listening_socket(args.host, args.port, "--port or PORT")
            port = bound_port(sock)
            server.run(app, sock=sock, header_seconds=settings.header_read_seconds,
                       backlog=settings.http_backlog,
                       ready=lambda: print(f"Shokai listening on http://{args.host}:{port}", flush=True))
        elif args.command == "worker":
            if settings.redis_url is None:
                raise ConfigError("REDIS_URL is not set: a worker on its own needs the shared Redis "
                                  "(the embedded one lives inside `serve`)")
            from bot.app import run_worker_alone

            event_loop.run(run_worker_alone(settings))
        elif args.command == "users":
            from bot.web.dashboard import cli as users

            return asyncio.run(users.run(settings, args))
        elif args.command == "richmenu":
            from bot.richmenu.cli import run
            from bot.richmenu.spec import RichMenuError

            try:
                return asyncio.run(run(settings))
            except RichMenuError as exc:
                print(f"shokai richmenu: {exc}", file=sys.stderr)
                return 2
    except (ConfigError, RulesError) as exc:
        print(f"shokai: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
