"""`python -m bot users add EMAIL --role owner|staff|viewer | list | remove EMAIL | reset-password EMAIL`.

A password is read as one line from standard input (prompted for, unechoed, on a terminal), never from the
command line, where it would land in the shell's history and the process list.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.config import Settings
from bot.services import open_redis
from bot.web.dashboard.accounts import ROLES, AccountError, StaffAccounts


def add_parser(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="staff accounts of the dashboard (/admin/)")
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add an account; the password is read from standard input")
    add.add_argument("email")
    add.add_argument("--role", choices=ROLES, required=True)
    actions.add_parser("list", help="every account with its role")
    remove = actions.add_parser("remove", help="remove an account (its sessions end at once)")
    remove.add_argument("email")
    reset = actions.add_parser("reset-password", help="a new password from standard input (sessions end)")
    reset.add_argument("email")


def read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        return getpass.getpass("Password: ")
    return stdin.readline().rstrip("\r\n")


async def run(settings: Settings, args: argparse.Namespace, stdin: TextIO = sys.stdin,
              out: TextIO = sys.stdout) -> int:
    async with open_redis(settings) as redis:
        accounts = StaffAccounts(redis)
        try:
            if args.action == "add":
                account = await accounts.add(args.email, args.role, read_password(stdin))
                print(f"added {account.email} ({account.role})", file=out)
            elif args.action == "list":
                for account in await accounts.list():
                    created = datetime.fromtimestamp(account.created_at / 1000, UTC)
                    print(f"{account.email}\t{account.role}\tsince {created:%Y-%m-%d %H:%M} UTC", file=out)
            elif args.action == "remove":
                if not await accounts.remove(args.email):
                    print(f"shokai users: {args.email} has no account", file=sys.stderr)
                    return 1
                print(f"removed {args.email}", file=out)
            elif args.action == "reset-password":
                account = await accounts.reset_password(args.email, read_password(stdin))
                print(f"new password set for {account.email}; its sessions are ended", file=out)
        except AccountError as exc:
            print(f"shokai users: {exc}", file=sys.stderr)
            return 1
    return 0
