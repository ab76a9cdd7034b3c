"""``vicocam serve --tls ...``: certificates chosen on the command line, checked at start."""

from __future__ import annotations

import pytest

pytest.importorskip("aiortc")

from pipeline.app.cli import build_parser, main
from pipeline.app.commands.serve import server_config
from pipeline.app.tls_options import announce_certificate
from pipeline.errors import UserError
from stages.webrtc.tls import CERT_FILE, check_files, self_signed


def config_of(*flags):
    return server_config(build_parser().parse_args(["serve", "--identity", "--port", "0",
                                                    *flags]))


def test_self_signed_is_made_in_the_cache_for_the_servers_names_then_reused(tmp_path, capsys):
    cache = tmp_path / "cache"
    first = config_of("--tls", "self-signed", "--cache", str(cache), "--allow-host",
                      "vicocam.test", "--tls-name", "192.168.1.5").tls
    assert first is not None and first.cert == cache / "tls" / CERT_FILE
    made = capsys.readouterr().err
    certificate = check_files(first)
    assert set(certificate.names) == {"localhost", "127.0.0.1", "::1", "vicocam.test",
                                      "192.168.1.5"}
    assert "made a self-signed certificate" in made and "vicocam.test" in made
    again = config_of("--tls", "self-signed", "--cache", str(cache), "--allow-host",
                      "vicocam.test")
    assert again.tls == first and check_files(first) == certificate  # kept, same fingerprint
    assert "made a self-signed" not in capsys.readouterr().err


def test_the_cache_folder_defaults_to_vicocams(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOCAM_CACHE", str(tmp_path))
    assert config_of("--tls", "self-signed").tls.cert == tmp_path / "tls" / CERT_FILE


def test_given_files_are_checked_before_the_server_starts(tmp_path):
    files = self_signed(tmp_path, ["localhost"]).files
    config = config_of("--tls-cert", str(files.cert), "--tls-key", str(files.key))
    assert config.tls == files
    with pytest.raises(UserError, match="no such file"):
        config_of("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(files.key))
    with pytest.raises(UserError, match="not a PEM private key"):
        config_of("--tls-cert", str(files.cert), "--tls-key", str(files.cert))


@pytest.mark.parametrize(("flags", "message"), [
    (["--tls-cert", "c.pem"], "go together"),
    (["--tls-key", "k.pem"], "go together"),
    (["--tls", "self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "not both"),
    (["--tls-name", "gpu-box"], "add --tls self-signed"),
])
def test_tls_flags_that_do_not_fit_together_are_user_errors(flags, message):
    with pytest.raises(UserError, match=message):
        config_of(*flags)


def test_a_bad_certificate_name_is_a_user_error_not_a_traceback(tmp_path, capsys):
    code = main(["serve", "--identity", "--tls", "self-signed", "--cache", str(tmp_path),
                 "--tls-name", "http://gpu-box/"])
    err = capsys.readouterr().err
    assert code == 2 and "not a host name" in err and "Traceback" not in err


def test_the_fingerprints_users_need_are_printed(tmp_path, capsys):
    certificate = self_signed(tmp_path, ["localhost"])
    announce_certificate(certificate.files)
    err = capsys.readouterr().err
    assert f"--fingerprint {certificate.sha256}" in err
    assert f"--ignore-certificate-errors-spki-list: {certificate.spki_sha256}" in err
