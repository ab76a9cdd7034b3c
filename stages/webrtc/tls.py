"""Certificates for ``vicocam serve --tls``: given files, or a self-signed one kept in a cache.

Browsers give the camera only to secure contexts: HTTPS, or a loopback
address. A server reached by any other name must therefore speak HTTPS, with
a certificate the browser accepts.

`check_files` validates a certificate and key the user gives (clear
`TlsError` messages for missing, unreadable, malformed or mismatched files);
`self_signed` makes one for a set of host names and addresses, keeps it in a
folder and reuses it while it is valid and covers the names. Its key pair is
kept across renewals, so its public-key hash (`Certificate.spki_sha256`, what
Chromium's ``--ignore-certificate-errors-spki-list`` takes) stays the same
when only the names or the dates change.

A client that cannot check the certificate against a trusted authority pins
its SHA-256 fingerprint instead (`Certificate.sha256`, `parse_fingerprint`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stages.webrtc.security import host_name

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""Names every self-signed certificate covers, so the machine itself can always use it."""

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})

VALID_DAYS = 365
"""Lifetime of a self-signed certificate."""

RENEW_BEFORE = dt.timedelta(days=7)
"""A self-signed certificate this close to its end is made again."""

CERT_FILE = "self-signed-cert.pem"
KEY_FILE = "self-signed-key.pem"

Clock = Callable[[], dt.datetime]


class TlsError(ValueError):
    """A certificate or key cannot be used; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A PEM certificate (chain) and its unencrypted PEM private key."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Certificate:
    """A usable server certificate and what users need to trust it.

    Attributes:
        files: where it and its key are.
        sha256: SHA-256 of the certificate (DER), ``AB:CD:...`` as browsers and
            ``openssl x509 -fingerprint -sha256`` show it; what a client pins.
        spki_sha256: base64 SHA-256 of its public key (SubjectPublicKeyInfo),
            what Chromium's ``--ignore-certificate-errors-spki-list`` takes.
        names: the host names and addresses it covers (its subject
            alternative names), lowercased.
        not_after: the end of its validity (UTC).
        created: whether `self_signed` made it now (``False``: reused or given).
    """

    files: TlsFiles
    sha256: str
    spki_sha256: str
    names: tuple[str, ...]
    not_after: dt.datetime
    created: bool = False


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---- given files -------------------------------------------------------------------------
def check_files(files: TlsFiles, clock: Clock = _utc_now) -> Certificate:
    """The certificate of ``files`` once it, its key and Python's TLS all accept them.

    Raises `TlsError` saying which file is missing, unreadable, not PEM, an
    encrypted key, or a key that does not belong to the certificate. An
    expired certificate is returned (`Certificate.not_after` says so): the
    caller decides whether that is fatal.
    """
    cert = _load_cert(files.cert)
    key = _load_key(files.key)
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise TlsError(f"the key {files.key} does not belong to the certificate {files.cert} "
                       "(their public keys differ); give the key the certificate was made for")
    server_context(files)
    return describe(cert, files)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise TlsError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None


def _load_cert(path: Path) -> x509.Certificate:
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise TlsError(f"certificate {path}: not a PEM certificate (a file starting with "
                       "-----BEGIN CERTIFICATE-----)") from None


def _load_key(path: Path) -> PrivateKeyTypes:
    data = _read(path, "key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"key {path}: it is encrypted; give an unencrypted copy "
                       "(openssl pkey -in KEY -out PLAIN-KEY)") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError(f"key {path}: not a PEM private key ({exc})") from None


def _public_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS server context presenting ``files``; `TlsError` if Python's TLS refuses them."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(files.cert, files.key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"the certificate {files.cert} and key {files.key} cannot be used "
                       f"for TLS: {exc}") from None
    return context


def describe(cert: x509.Certificate, files: TlsFiles, created: bool = False) -> Certificate:
    """The `Certificate` summary of a loaded certificate."""
    return Certificate(
        files=files,
        sha256=colon_hex(cert.fingerprint(hashes.SHA256())),
        spki_sha256=spki_hash(cert),
        names=tuple(sorted(_san_names(cert))),
        not_after=cert.not_valid_after_utc,
        created=created,
    )


def spki_hash(cert: x509.Certificate) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo."""
    digest = hashlib.sha256(_public_der(cert.public_key())).digest()
    return base64.b64encode(digest).decode()


def colon_hex(digest: bytes) -> str:
    """``AB:CD:...``: a digest as browsers and openssl show fingerprints."""
    return ":".join(f"{b:02X}" for b in digest)


def _san_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {str(n).lower() for n in san.get_values_for_type(x509.DNSName)}
    return names | {str(a) for a in san.get_values_for_type(x509.IPAddress)}


# ---- fingerprints ------------------------------------------------------------------------------
_SEPARATORS = re.compile(r"[\s:]")


def parse_fingerprint(text: str) -> bytes:
    """The 32 bytes of a SHA-256 fingerprint written in hex, with or without colons.

    Accepts ``AB:CD:...`` (browsers, openssl, `vicocam serve`), plain hex and
    an optional ``sha256:`` / ``SHA256 Fingerprint=`` prefix; `ValueError`
    otherwise.
    """
    value = text.strip()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha256="):
        if value.lower().startswith(prefix):
            value = value[len(prefix):]
    digits = _SEPARATORS.sub("", value)
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint: give 64 hex digits, "
                         "e.g. AB:CD:... as 'vicocam serve' prints it")
    return bytes.fromhex(digits)


# ---- names -----------------------------------------------------------------------------------
def certificate_names(bind: str, extra: Iterable[str] = (), *,
                      machine_name: str | None = None) -> tuple[str, ...]:
    """The names a self-signed certificate for a server bound to ``bind`` covers.

    The loopback names, ``bind`` itself unless it is a wildcard address (then
    ``machine_name``, this machine's host name, when given) and ``extra``
    (names or addresses such as ``gpu-box.local``, ``192.168.1.5``),
    normalised and without ports; `TlsError` for a malformed one.
    """
    wanted = [*LOOPBACK_NAMES, *extra]
    if bind not in WILDCARD_BINDS:
        wanted.append(bind)
    elif machine_name:
        wanted.append(machine_name)
    return tuple(dict.fromkeys(_normal_name(n) for n in wanted))


def _normal_name(value: str) -> str:
    """``value`` as a certificate names it: lowercased, no port, IPv6 without brackets."""
    text = value.strip()
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text))  # also a bare IPv6 address
    name = host_name(text)
    if name is None:
        raise TlsError(f"{value!r} is not a host name or address for a certificate")
    return name


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


# ---- self-signed ---------------------------------------------------------------------------------
def self_signed(folder: Path, names: Iterable[str], clock: Clock = _utc_now) -> Certificate:
    """A self-signed certificate for ``names`` in ``folder``: the kept one, or a new one.

    The kept certificate is reused while it covers ``names`` and has more
    than `RENEW_BEFORE` left; otherwise a new one is made for exactly
    ``names`` (so the printed fingerprint changes). The key pair is reused
    whenever it can be read. Raises `TlsError` when the folder cannot be
    written.
    """
    wanted = {_normal_name(n) for n in names}
    files = TlsFiles(folder / CERT_FILE, folder / KEY_FILE)
    kept = _kept(files, wanted, clock())
    if kept is not None:
        return kept
    return _make(files, sorted(wanted), clock())


def _kept(files: TlsFiles, wanted: set[str], now: dt.datetime) -> Certificate | None:
    """The kept certificate if it is usable for ``wanted`` until well after ``now``."""
    try:
        current = check_files(files)
    except TlsError:
        return None
    fresh = current.not_after - now > RENEW_BEFORE
    return current if fresh and wanted <= set(current.names) else None


def _make(files: TlsFiles, names: list[str], now: dt.datetime) -> Certificate:
    key = _kept_key(files.key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vicocam {names[0]}")])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))  # clocks differ a little
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_KEY_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return describe(cert, files, created=True)


_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False)


def _kept_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The kept EC key at ``path``, or a new P-256 key written there (owner-only)."""
    try:
        key = _load_key(path)
    except TlsError:
        key = None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    new = ec.generate_private_key(ec.SECP256R1())
    pem = new.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write(path, pem, private=True)
    return new


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` to ``path`` whole (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        temporary.replace(path)
    except OSError as exc:
        raise TlsError(f"cannot keep the self-signed certificate in {path.parent}: {exc} "
                       "(choose another folder with --cache)") from None
