"""``vicocam serve --stun/--turn``: ICE servers and TURN credentials from the command line and
the environment, checked at start, and the same on every cluster replica."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle

import pytest

pytest.importorskip("aiortc")

from pipeline.app.cli import build_parser, main
from pipeline.app.cluster.command import cluster_config, replica_config
from pipeline.app.commands.serve import announce, build_server, server_config
from pipeline.app.ice_options import TURN_PASSWORD_ENV, TURN_SECRET_ENV, ice_servers
from pipeline.errors import UserError
from stages.webrtc.ice_servers import DEFAULT_TURN_TTL_S, IceServer, TurnRestServer
from stages.webrtc.peer_session import Session, identity_factory

TURN = "turn:turn.example.org:3478"
TURNS = "turns:turn.example.org:5349"
SECRET = "coturn-static-auth-secret"


@pytest.fixture(autouse=True)
def no_turn_environment(monkeypatch):
    """The developer's own TURN variables must not leak into these tests."""
    monkeypatch.delenv(TURN_SECRET_ENV, raising=False)
    monkeypatch.delenv(TURN_PASSWORD_ENV, raising=False)


def args_of(*flags):
    return build_parser().parse_args(["serve", "--identity", "--port", "0", *flags])


def servers_of(*flags, environ=None):
    return ice_servers(args_of(*flags), environ or {})


def test_no_ice_servers_by_default():
    assert servers_of() == ()
    assert server_config(args_of()).session.ice_servers == ()


def test_stun_urls_are_kept_one_entry_each():
    assert servers_of("--stun", "stun:a.example:3478", "--stun", "stun:b.example") == (
        IceServer(("stun:a.example:3478",)), IceServer(("stun:b.example",)))


def test_a_fixed_turn_user_shares_one_entry_for_all_turn_urls():
    servers = servers_of("--stun", "stun:a.example", "--turn", TURN, "--turn", TURNS,
                         "--turn-user", "alice", "--turn-password", "pw")
    assert servers == (IceServer(("stun:a.example",)), IceServer((TURN, TURNS), "alice", "pw"))


def test_a_shared_secret_mints_credentials_for_a_day_unless_told():
    (turn,) = servers_of("--turn", TURN, "--turn-secret", SECRET)
    assert turn == TurnRestServer((TURN,), SECRET, DEFAULT_TURN_TTL_S)
    (short,) = servers_of("--turn", TURN, "--turn-secret", SECRET, "--turn-ttl", "3600")
    assert short.ttl_s == 3600
    minted = short.resolve(1_700_000_000)
    assert minted.username == "1700003600:vicocam"
    assert minted.credential == base64.b64encode(hmac.new(
        SECRET.encode(), b"1700003600:vicocam", hashlib.sha1).digest()).decode()


def test_the_secret_and_the_password_may_come_from_the_environment():
    (turn,) = servers_of("--turn", TURN, environ={TURN_SECRET_ENV: SECRET})
    assert turn == TurnRestServer((TURN,), SECRET)
    (fixed,) = servers_of("--turn", TURN, "--turn-user", "alice",
                          environ={TURN_PASSWORD_ENV: "pw", TURN_SECRET_ENV: SECRET})
    assert fixed == IceServer((TURN,), "alice", "pw")  # --turn-user picks the fixed user
    (flag,) = servers_of("--turn", TURN, "--turn-secret", "from-flag",
                         environ={TURN_SECRET_ENV: SECRET})
    assert flag.secret == "from-flag"  # a flag beats its variable
    assert servers_of(environ={TURN_SECRET_ENV: SECRET}) == ()  # no --turn, no TURN


def test_the_environment_reaches_the_real_command(monkeypatch):
    monkeypatch.setenv(TURN_SECRET_ENV, SECRET)
    (turn,) = server_config(args_of("--turn", TURN)).session.ice_servers
    assert turn == TurnRestServer((TURN,), SECRET)


@pytest.mark.parametrize("flags, message", [
    (("--stun", TURN), "is a TURN server: give it with --turn"),
    (("--stun", "stun.example.org"), "--stun: 'stun.example.org' is not an ICE server URL"),
    (("--turn", "stun:a.example", "--turn-secret", SECRET), "is a STUN server: give it "
                                                            "with --stun"),
    (("--turn", "turn://x", "--turn-secret", SECRET), "--turn: 'turn://x' is not an ICE"),
    (("--turn", "turns:x?transport=udp", "--turn-secret", SECRET), r"\?transport=tcp"),
    (("--turn", TURN), "--turn needs credentials: --turn-user NAME with --turn-password"),
    (("--turn", TURN, "--turn-user", "alice"), "needs its password: --turn-password"),
    (("--turn", TURN, "--turn-password", "pw"), "--turn-password goes with --turn-user"),
    (("--turn", TURN, "--turn-user", "alice", "--turn-password", "pw", "--turn-secret",
      SECRET), "--turn-user and --turn-secret do not go together"),
    (("--turn", TURN, "--turn-user", "alice", "--turn-password", "pw", "--turn-ttl", "60"),
     "--turn-user and --turn-ttl do not go together"),
    (("--turn-secret", SECRET), "--turn-secret is for a TURN server: add --turn URL"),
    (("--turn-user", "alice", "--turn-password", "pw"), "--turn-user is for a TURN server"),
    (("--turn", TURN, "--turn-secret", ""), "the TURN shared secret is empty"),
    (("--turn", TURN, "--turn-user", "", "--turn-password", "pw"),
     "needs a username and a credential"),
])
def test_wrong_ice_options_say_what_to_give(flags, message):
    with pytest.raises(UserError, match=message):
        server_config(args_of(*flags))


def test_a_wrong_option_ends_the_command_with_one_line(capsys):
    assert main(["serve", "--identity", "--stun", TURN]) == 2
    err = capsys.readouterr().err
    assert "--stun turn:turn.example.org:3478 is a TURN server" in err and "Traceback" not in err
    assert main(["serve", "--identity", "--turn", TURN, "--turn-secret", SECRET,
                 "--turn-ttl", "0"]) == 2
    assert "--turn-ttl" in capsys.readouterr().err


def test_the_start_names_the_ice_servers_but_no_secret(capsys):
    server, _ = build_server(args_of("--stun", "stun:a.example", "--turn", TURN,
                                     "--turn-secret", SECRET, "--turn-ttl", "600"))
    capsys.readouterr()
    announce("http://127.0.0.1:8080/", server)
    err = capsys.readouterr().err
    assert "vicocam: ICE server stun:a.example\n" in err
    assert (f"vicocam: ICE server {TURN} with credentials from the shared secret, valid 600 s"
            in err)
    assert SECRET not in err and SECRET not in repr(server.config)
    fixed, _ = build_server(args_of("--turn", TURN, "--turn-user", "alice",
                                    "--turn-password", "hunter2"))
    announce("http://127.0.0.1:8080/", fixed)
    err = capsys.readouterr().err
    assert f"vicocam: ICE server {TURN} as alice" in err and "hunter2" not in err
    assert "hunter2" not in repr(fixed.config)


def test_every_replica_gets_the_gateways_ice_servers_and_mints_its_own_credentials():
    args = build_parser().parse_args(["serve", "--cluster", "--identity", "--stun",
                                      "stun:a.example", "--turn", TURN, "--turn-secret", SECRET,
                                      "--turn-ttl", "600"])
    gateway = server_config(args)
    replica = pickle.loads(pickle.dumps(replica_config(args, gateway, cluster_config(args))))
    assert replica.server.session.ice_servers == gateway.session.ice_servers
    session = Session("s1", identity_factory, replica.server.session)
    stun, turn = session.rtc_configuration(1_700_000_000).iceServers
    assert stun.urls == ["stun:a.example"] and stun.username is None
    assert turn.username == "1700000600:vicocam"
    assert turn.credential == base64.b64encode(hmac.new(
        SECRET.encode(), b"1700000600:vicocam", hashlib.sha1).digest()).decode()
