"""``vicocam serve``'s ICE server options: STUN, and TURN with its credentials.

Peers behind NAT find their public address with a STUN server (``--stun``);
peers behind a symmetric NAT are reached only through a TURN relay
(``--turn``), which wants credentials, given one of two ways:

- ``--turn-user NAME --turn-password PASSWORD``: a fixed user of the TURN
  server (coturn: ``lt-cred-mech`` with ``user=NAME:PASSWORD``). Every page
  and client gets that password.
- ``--turn-secret SECRET``: coturn's shared secret (``use-auth-secret`` with
  ``static-auth-secret=SECRET``). The server mints credentials from it for
  each config request and each session, valid ``--turn-ttl`` seconds
  (`stages.webrtc.ice_servers.rest_credentials`); the secret itself never
  leaves the server.

The password and the secret may come from the environment instead
(``VICOCAM_TURN_PASSWORD``, ``VICOCAM_TURN_SECRET``), where ``ps`` does not
show them; a flag beats its variable, and ``--turn-user`` picks the fixed
user even when a secret is in the environment. Neither is ever printed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipeline.app.options import positive_int
from pipeline.errors import UserError

if TYPE_CHECKING:
    from stages.webrtc.ice_servers import IceServer, IceServerEntry

TURN_SECRET_ENV = "VICOCAM_TURN_SECRET"
TURN_PASSWORD_ENV = "VICOCAM_TURN_PASSWORD"
CREDENTIALS_HINT = (f"--turn-user NAME with --turn-password PASSWORD (or {TURN_PASSWORD_ENV}) "
                    f"for a fixed user, or --turn-secret SECRET (or {TURN_SECRET_ENV}) for "
                    "coturn's use-auth-secret")


def add_ice_options(parser: argparse.ArgumentParser) -> None:
    """``--stun``, ``--turn`` and the TURN credentials."""
    from stages.webrtc.ice_servers import DEFAULT_TURN_TTL_S

    group = parser.add_argument_group("NAT traversal (STUN and TURN servers)")
    group.add_argument("--stun", action="append", default=[], metavar="URL",
                       help="STUN server (stun:HOST[:PORT]) peers behind NAT find their "
                            "address with (repeatable)")
    group.add_argument("--turn", action="append", default=[], metavar="URL",
                       help="TURN relay for peers no direct path reaches, e.g. behind a "
                            "symmetric NAT (repeatable: turn:HOST[:PORT][?transport=udp|tcp] "
                            "or turns:HOST[:PORT]); needs credentials, as follows")
    group.add_argument("--turn-user", default=None, metavar="NAME",
                       help="a fixed TURN user (coturn: lt-cred-mech, user=NAME:PASSWORD)")
    group.add_argument("--turn-password", default=None, metavar="PASSWORD",
                       help=f"its password, given to every page and client (or set "
                            f"{TURN_PASSWORD_ENV}, which ps does not show)")
    group.add_argument("--turn-secret", default=None, metavar="SECRET",
                       help=f"coturn's static-auth-secret (use-auth-secret): pages, clients "
                            f"and sessions get fresh credentials minted from it, never the "
                            f"secret (or set {TURN_SECRET_ENV}, which ps does not show)")
    group.add_argument("--turn-ttl", type=positive_int, default=None, metavar="S",
                       help=f"how long minted credentials stay valid ({DEFAULT_TURN_TTL_S}); "
                            "a session's relay ends that long after they were minted")


def ice_servers(args: argparse.Namespace,
                environ: Mapping[str, str] | None = None) -> tuple[IceServerEntry, ...]:
    """The ICE servers of ``args`` and ``environ`` (default `os.environ`); `UserError` if wrong."""
    environ = os.environ if environ is None else environ
    try:
        return (*_stun_servers(args.stun), *_turn_servers(args, environ))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _stun_servers(urls: list[str]) -> tuple[IceServer, ...]:
    from stages.webrtc.ice_servers import IceServer

    return tuple(IceServer((_checked(url, "--stun"),)) for url in urls)


def _checked(url: str, flag: str) -> str:
    """``url`` when it suits ``flag``; `ValueError` with what to give instead."""
    from stages.webrtc.ice_servers import url_scheme

    try:
        scheme = url_scheme(url)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None
    if flag == "--stun" and scheme != "stun":
        raise ValueError(f"--stun {url} is a TURN server: give it with --turn, and its "
                         f"credentials: {CREDENTIALS_HINT}")
    if flag == "--turn" and scheme == "stun":
        raise ValueError(f"--turn {url} is a STUN server: give it with --stun")
    return url


def _turn_servers(args: argparse.Namespace,
                  environ: Mapping[str, str]) -> tuple[IceServerEntry, ...]:
    from stages.webrtc.ice_servers import DEFAULT_TURN_TTL_S, IceServer, TurnRestServer

    _check_turn_flags(args)
    if not args.turn:
        return ()
    urls = tuple(_checked(url, "--turn") for url in args.turn)
    if args.turn_user is not None:
        return (IceServer(urls, args.turn_user, _password(args, environ)),)
    secret = args.turn_secret if args.turn_secret is not None else environ.get(TURN_SECRET_ENV)
    if secret is None:
        raise ValueError(f"--turn needs credentials: {CREDENTIALS_HINT}")
    return (TurnRestServer(urls, secret, args.turn_ttl or DEFAULT_TURN_TTL_S),)


def _check_turn_flags(args: argparse.Namespace) -> None:
    fixed = [flag for flag, value in (("--turn-user", args.turn_user),
                                      ("--turn-password", args.turn_password))
             if value is not None]
    minted = [flag for flag, value in (("--turn-secret", args.turn_secret),
                                       ("--turn-ttl", args.turn_ttl)) if value is not None]
    if fixed and minted:
        raise ValueError(f"{fixed[0]} and {minted[0]} do not go together: give --turn-user/"
                         "--turn-password (a fixed user) or --turn-secret [--turn-ttl] "
                         "(credentials minted from coturn's shared secret)")
    if (fixed or minted) and not args.turn:
        raise ValueError(f"{(fixed or minted)[0]} is for a TURN server: add --turn URL")
    if args.turn_password is not None and args.turn_user is None:
        raise ValueError("--turn-password goes with --turn-user NAME")


def _password(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    password = args.turn_password
    if password is None:
        password = environ.get(TURN_PASSWORD_ENV)
    if not password:
        raise ValueError(f"--turn-user {args.turn_user} needs its password: --turn-password "
                         f"PASSWORD, or {TURN_PASSWORD_ENV} in the environment")
    return password
