"""HTTPS for `vicocam serve`: certificates (given or self-signed), the server over TLS,
and `vicocam client` pinning the certificate's fingerprint."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
import subprocess

import aiohttp
import pytest

pytest.importorskip("aiortc")

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.app.cli import main
from stages.webrtc.server import ServerConfig, ServerThread, WebRTCServer
from stages.webrtc.tls import (
    CERT_FILE,
    KEY_FILE,
    TlsError,
    TlsFiles,
    certificate_names,
    check_files,
    parse_fingerprint,
    self_signed,
)

NAMES = ("localhost", "127.0.0.1", "::1", "vicocam.test")


def days_later(days: float):
    return lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


# ---- self-signed ------------------------------------------------------------------------
def test_a_self_signed_certificate_covers_its_names_and_is_kept(tmp_path):
    made = self_signed(tmp_path, NAMES)
    assert made.created and set(made.names) == set(NAMES)
    assert made.files == TlsFiles(tmp_path / CERT_FILE, tmp_path / KEY_FILE)
    assert (made.files.key.stat().st_mode & 0o777) == 0o600  # the key stays private
    again = self_signed(tmp_path, ["vicocam.test", "localhost"])  # fewer names: covered
    assert not again.created and again.sha256 == made.sha256
    assert check_files(made.files) == again


def test_new_names_or_a_near_end_make_a_new_certificate_with_the_same_key(tmp_path):
    first = self_signed(tmp_path, NAMES)
    wider = self_signed(tmp_path, [*NAMES, "gpu-box.local", "192.168.1.5"])
    assert wider.created and wider.sha256 != first.sha256
    assert {"gpu-box.local", "192.168.1.5"} <= set(wider.names)
    # The key pair is kept: a browser trusting its public-key hash still does.
    assert wider.spki_sha256 == first.spki_sha256
    assert not self_signed(tmp_path, NAMES, clock=days_later(300)).created
    renewed = self_signed(tmp_path, NAMES, clock=days_later(360))
    assert renewed.created and renewed.spki_sha256 == first.spki_sha256
    assert renewed.not_after > wider.not_after


def test_an_unreadable_kept_certificate_is_replaced(tmp_path):
    first = self_signed(tmp_path, NAMES)
    first.files.cert.write_text("not a certificate")
    assert self_signed(tmp_path, NAMES).created


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command to compare with")
def test_the_fingerprints_are_the_ones_openssl_computes(tmp_path):
    made = self_signed(tmp_path, NAMES)
    cert = str(made.files.cert)
    fingerprint = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint",
                                  "-sha256"], capture_output=True, text=True, check=True).stdout
    assert fingerprint.strip().split("=")[1] == made.sha256
    spki = subprocess.run(
        f"openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform der"
        " | openssl dgst -sha256 -binary | base64", shell=True, capture_output=True,
        text=True, check=True).stdout
    assert spki.strip() == made.spki_sha256


def test_certificate_names_start_from_loopback_and_the_bind():
    assert certificate_names("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert certificate_names("192.168.1.5", ["Gpu-Box.Local:8080"]) == (
        "localhost", "127.0.0.1", "::1", "gpu-box.local", "192.168.1.5")
    assert certificate_names("0.0.0.0", machine_name="box")[-1] == "box"
    assert certificate_names("::", ["fe80::1"])[-1] == "fe80::1"
    with pytest.raises(TlsError, match="not a host name"):
        certificate_names("127.0.0.1", ["http://gpu-box/"])


# ---- given files -----------------------------------------------------------------------------
def other_key(path):
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def encrypted_key(path):
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pass")))
    return path


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda f, tmp: TlsFiles(tmp / "none.pem", f.key), "none.pem: no such file"),
    (lambda f, tmp: TlsFiles(tmp, f.key), "cannot read it"),
    (lambda f, tmp: TlsFiles(f.key, f.key), "not a PEM certificate"),
    (lambda f, tmp: TlsFiles(f.cert, tmp / "none.key"), "none.key: no such file"),
    (lambda f, tmp: TlsFiles(f.cert, f.cert), "not a PEM private key"),
    (lambda f, tmp: TlsFiles(f.cert, encrypted_key(tmp / "enc.key")), "encrypted"),
    (lambda f, tmp: TlsFiles(f.cert, other_key(tmp / "other.key")), "does not belong"),
])
def test_given_files_are_refused_with_the_reason(tmp_path, break_it, message):
    files = self_signed(tmp_path / "kept", NAMES).files
    with pytest.raises(TlsError, match=message):
        check_files(break_it(files, tmp_path))


def test_fingerprints_are_read_in_the_usual_spellings():
    digest = bytes(range(32))
    colons = ":".join(f"{b:02X}" for b in digest)
    for text in (colons, colons.lower(), digest.hex(), f"sha256 Fingerprint={colons}",
                 f"SHA256:{digest.hex()}", f" {colons} "):
        assert parse_fingerprint(text) == digest, text
    for bad in ("", "AB:CD", digest.hex() + "00", "zz" * 32):
        with pytest.raises(ValueError, match="SHA-256"):
            parse_fingerprint(bad)


# ---- the server over HTTPS ------------------------------------------------------------------
def tls_server(tmp_path, **config) -> tuple[WebRTCServer, TlsFiles]:
    files = self_signed(tmp_path / "tls", NAMES).files
    server = WebRTCServer(ServerConfig(port=0, ice_host="127.0.0.1", tls=files, **config))
    return server, files


async def statuses(url: str, cafile, hosts) -> list[int]:
    context = ssl.create_default_context(cafile=cafile)
    async with aiohttp.ClientSession() as http:
        found = []
        for host in hosts:
            headers = {"Host": host} if host else {}
            async with http.get(url + "api/config", ssl=context, headers=headers) as response:
                found.append(response.status)
        return found


def test_the_server_speaks_https_and_still_refuses_rebound_host_names(tmp_path):
    server, files = tls_server(tmp_path, allowed_hosts=("vicocam.test",))
    with ServerThread(server) as url:
        assert url.startswith("https://127.0.0.1:") and url.endswith("/")
        found = asyncio.run(statuses(url, files.cert, [None, "vicocam.test", "localhost:1",
                                                       "attacker.example", "attacker.example:1"]))
        plain = url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            asyncio.run(statuses(plain, None, [None]))
    assert found == [200, 200, 200, 403, 403]


def test_a_certificate_the_client_does_not_trust_is_refused(tmp_path):
    server, _ = tls_server(tmp_path)
    with ServerThread(server) as url, pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(statuses(url, None, [None]))


# ---- vicocam client --------------------------------------------------------------------------
def client(url, *flags):
    return main(["client", "--server", url, "--source", "pattern:160x120@30", "--sink",
                 flags[-1], "--seconds", "1.5", "--ice-host", "127.0.0.1", *flags[:-1]])


def test_the_client_connects_to_a_pinned_certificate_and_refuses_another(tmp_path, capsys):
    server, files = tls_server(tmp_path)
    right = check_files(files).sha256
    wrong = ":".join(["00"] * 32)
    out = tmp_path / "back.mp4"
    with ServerThread(server) as url:
        unpinned = client(url, str(out))
        unpinned_err = capsys.readouterr().err
        mismatch = client(url, "--fingerprint", wrong, str(out))
        mismatch_err = capsys.readouterr().err
        nothing_written = not out.exists()  # refused before a single frame was sent
        pinned = client(url, "--fingerprint", right.lower(), str(out))
    assert unpinned == 2 and "not trusted" in unpinned_err and "--fingerprint" in unpinned_err
    assert mismatch == 2 and "not the pinned one" in mismatch_err
    assert right in mismatch_err and wrong in mismatch_err and "Traceback" not in mismatch_err
    assert nothing_written
    assert pinned == 0 and "received" in capsys.readouterr().out and out.stat().st_size > 0


def test_the_client_trusts_a_given_authority_file(tmp_path, capsys):
    server, files = tls_server(tmp_path)
    out = tmp_path / "back.mp4"
    with ServerThread(server) as url:
        assert client(url, "--ca", str(files.cert), str(out)) == 0
    assert "received" in capsys.readouterr().out


@pytest.mark.parametrize(("server_url", "flags", "message"), [
    ("http://127.0.0.1:1", ["--fingerprint", "AB" * 32], "https://"),
    ("https://127.0.0.1:1", ["--fingerprint", "AB:CD"], "not a SHA-256 fingerprint"),
    ("https://127.0.0.1:1", ["--fingerprint", "AB" * 32, "--ca", "x.pem"], "not both"),
    ("https://127.0.0.1:1", ["--ca", "no-such-ca.pem"], "no-such-ca.pem"),
])
def test_client_certificate_options_are_checked_first(server_url, flags, message, capsys):
    assert client(server_url, *flags, "unused.mp4") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
