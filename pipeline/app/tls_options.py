"""``vicocam serve``'s HTTPS options: a given certificate, or a self-signed one kept in the cache.

Browsers give the camera only to secure contexts, so a page reached by any
name but a loopback one needs HTTPS. ``--tls-cert``/``--tls-key`` serve a
certificate the user has (from their own authority, or a public one);
``--tls self-signed`` makes one for the server's names (`certificate_names`:
loopback names, the bind address, ``--allow-host`` and ``--tls-name``),
keeps it in ``CACHE/tls`` and reuses it while it is valid and covers them.
What users need to trust it (its SHA-256 fingerprint, the public-key hash
Chromium takes) is printed at start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UserError

if TYPE_CHECKING:
    from stages.webrtc.tls import Certificate, TlsFiles


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls", choices=["self-signed"], default=None,
                        help="serve HTTPS with a certificate made for this server's names "
                             "(kept in the --cache folder and reused); needed for the camera "
                             "in browsers that reach the server by any name but localhost")
    parser.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                        help="serve HTTPS with this PEM certificate (chain); needs --tls-key")
    parser.add_argument("--tls-key", type=Path, default=None, metavar="FILE",
                        help="the unencrypted PEM private key of --tls-cert")
    parser.add_argument("--tls-name", action="append", default=[], metavar="NAME",
                        help="also put NAME (a host name or address) into the --tls "
                             "self-signed certificate (repeatable); --host and --allow-host "
                             "names are in it already")


def tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The checked certificate files ``args`` ask for; ``None`` = plain HTTP.

    Raises `UserError` when they cannot be used. A self-signed certificate
    is made here when none is kept yet, and that is said.
    """
    certificate = _certificate(args)
    if certificate is None:
        return None
    _report(certificate)
    return certificate.files


def _certificate(args: argparse.Namespace) -> Certificate | None:
    from stages.webrtc.tls import TlsError, TlsFiles, check_files

    _check_flags(args)
    try:
        if args.tls == "self-signed":
            return _self_signed(args)
        if args.tls_cert is not None:
            return check_files(TlsFiles(args.tls_cert, args.tls_key))
    except TlsError as exc:
        raise UserError(str(exc)) from exc
    return None


def _check_flags(args: argparse.Namespace) -> None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UserError("--tls-cert and --tls-key go together: give both")
    if args.tls is not None and args.tls_cert is not None:
        raise UserError("give --tls self-signed or --tls-cert/--tls-key, not both")
    if args.tls_name and args.tls != "self-signed":
        raise UserError("--tls-name adds names to a self-signed certificate; add --tls "
                        "self-signed (a given --tls-cert already has its names)")


def _self_signed(args: argparse.Namespace) -> Certificate:
    from stages.webrtc.tls import certificate_names, self_signed
    from trt_engines.bundle import default_cache_dir

    names = certificate_names(args.host, [*args.allow_host, *args.tls_name],
                              machine_name=socket.gethostname())
    return self_signed((args.cache or default_cache_dir()) / "tls", names)


def _report(certificate: Certificate) -> None:
    until = certificate.not_after.date().isoformat()
    names = ", ".join(certificate.names) or "no names"
    if certificate.created:
        _say(f"made a self-signed certificate for {names}, valid until {until}, kept in "
             f"{certificate.files.cert.parent}")
    else:
        _say(f"certificate {certificate.files.cert} for {names}, valid until {until}")
    if certificate.not_after <= dt.datetime.now(dt.UTC):
        _say(f"warning: the certificate expired on {until}; browsers and clients will "
             "refuse it")


def announce_certificate(files: TlsFiles) -> None:
    """Print what users need to trust ``files``' certificate (its fingerprints)."""
    from stages.webrtc.tls import TlsError, check_files

    try:
        certificate = check_files(files)
    except TlsError as exc:  # it changed since the start; the server already uses it
        _say(f"warning: {exc}")
        return
    _say(f"certificate SHA-256 fingerprint {certificate.sha256} (check it in the browser; "
         f"'vicocam client --fingerprint {certificate.sha256}' pins it)")
    _say(f"its public-key hash for Chromium's --ignore-certificate-errors-spki-list: "
         f"{certificate.spki_sha256}")


def _say(line: str) -> None:
    print(f"vicocam: {line}", file=sys.stderr)
