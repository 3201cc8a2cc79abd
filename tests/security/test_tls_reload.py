"""Certificates replaced on disk serve from the next handshake, through the same
SSLContext object the server was created with; broken replacements never do."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
from pathlib import Path

import pytest
from tls_material import TlsMaterial, make_tls_material

from broker.security.tls import TlsSettings, build_client_context
from broker.security.tls_reload import Reload, ReloadingContext

from .tls_server import LOOPS, connect, echo_server, run

RELOAD_LOG = "broker.security.tls_reload"


@pytest.fixture
def material(tmp_path: Path) -> TlsMaterial:
    return make_tls_material(tmp_path / "material")


@pytest.fixture
def live(tmp_path: Path, material: TlsMaterial) -> TlsSettings:
    """Settings over copies of the server files, which the tests then replace."""
    directory = tmp_path / "live"
    directory.mkdir()
    for name, source in [
        ("server.crt", material.server_cert),
        ("server.key", material.server_key),
        ("ca.crt", material.ca_cert),
    ]:
        shutil.copy(source, directory / name)
    return TlsSettings(
        ssl_certfile=directory / "server.crt",
        ssl_keyfile=directory / "server.key",
        ssl_cafile=directory / "ca.crt",
    )


def replace_file(target: Path, content: bytes) -> None:
    """As deployment tools do: write aside, then rename over (a new inode)."""
    aside = target.with_suffix(".new")
    aside.write_bytes(content)
    os.replace(aside, target)


def trusting_client(material: TlsMaterial, user: str | None = None) -> ssl.SSLContext:
    cert, key = material.client_cert(user) if user else (None, None)
    return build_client_context(cafile=material.ca_cert, certfile=cert, keyfile=key)


def serials_across(
    reloading: ReloadingContext, material: TlsMaterial, steps: list[object], loop: str = "uvloop"
) -> list[int | None]:
    """Runs `steps` (callables between connections) with one server up throughout,
    connecting after each; returns the serial the client saw each time."""

    async def main() -> list[int | None]:
        serials = []
        async with echo_server(reloading.context) as echo:
            for step in steps:
                assert callable(step)
                step()
                seen = await connect(echo.port, trusting_client(material))
                assert seen.echoed, seen.error
                serials.append(seen.serial)
        return serials

    return run(loop, main())


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_new_certificate_serves_from_the_next_handshake(
    material: TlsMaterial, live: TlsSettings, loop: str
) -> None:
    reloading = ReloadingContext(live)
    context = reloading.context
    new = material.ca.issue_server("rotated")
    outcomes: list[Reload] = []

    def rotate() -> None:
        replace_file(live.ssl_certfile, new.cert.read_bytes())
        replace_file(live.ssl_keyfile, new.key.read_bytes())
        outcomes.append(reloading.check())

    serials = serials_across(reloading, material, [lambda: None, rotate], loop)
    assert serials == [material.server.serial, new.serial]
    assert outcomes == [Reload.RELOADED]
    assert reloading.context is context
    assert reloading.check() is Reload.UNCHANGED
    assert reloading.last_error is None


def test_broken_replacements_keep_the_old_certificate(
    material: TlsMaterial, live: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=RELOAD_LOG)
    reloading = ReloadingContext(live)
    new = material.ca.issue_server("rotated")
    old_cert = live.ssl_certfile.read_bytes()
    outcomes: list[tuple[Reload, str | None]] = []

    def then(change: object) -> object:
        def step() -> None:
            assert callable(change)
            change()
            outcomes.append((reloading.check(), reloading.last_error))

        return step

    steps = [
        lambda: None,
        # Half a certificate, as a copy in progress leaves it.
        then(lambda: live.ssl_certfile.write_bytes(new.cert.read_bytes()[:300])),
        # Checked again, unchanged: not reported twice.
        then(lambda: None),
        # The whole new certificate, but still the old key.
        then(lambda: replace_file(live.ssl_certfile, new.cert.read_bytes())),
        # The key gone for a moment.
        then(lambda: live.ssl_keyfile.unlink()),
        # The new key: now the pair is whole.
        then(lambda: replace_file(live.ssl_keyfile, new.key.read_bytes())),
    ]
    serials = serials_across(reloading, material, steps)
    old = material.server.serial
    assert serials == [old, old, old, old, old, new.serial]
    assert [o for o, _ in outcomes] == [
        Reload.FAILED,
        Reload.UNCHANGED,
        Reload.FAILED,
        Reload.FAILED,
        Reload.RELOADED,
    ]
    errors = [e or "" for _, e in outcomes]
    assert "no PEM certificate" in errors[0] and errors[1] == errors[0]
    assert "is not the key of the first certificate" in errors[2]
    assert "no such file" in errors[3]
    assert errors[4] == ""
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert any("reloaded" in r.getMessage() for r in caplog.records)
    assert old_cert != live.ssl_certfile.read_bytes()


def test_a_ca_added_in_place_is_trusted_and_a_removed_one_stays_until_restart(
    material: TlsMaterial, live: TlsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=RELOAD_LOG)
    required = TlsSettings(
        ssl_certfile=live.ssl_certfile,
        ssl_keyfile=live.ssl_keyfile,
        ssl_cafile=live.ssl_cafile,
        ssl_client_auth="required",
    )
    reloading = ReloadingContext(required)
    assert live.ssl_cafile is not None
    ca_file = live.ssl_cafile
    own_ca = ca_file.read_bytes()
    cert, key = material.untrusted_client_cert("mallory")
    other_client = build_client_context(cafile=material.ca_cert, certfile=cert, keyfile=key)
    accepted: list[bool] = []

    async def main() -> None:
        async with echo_server(reloading.context) as echo:
            accepted.append((await connect(echo.port, other_client)).echoed)
            # Rewritten in place (same inode): both CAs.
            with ca_file.open("ab") as out:
                out.write(material.untrusted_ca_cert.read_bytes())
            assert reloading.check() is Reload.RELOADED
            accepted.append((await connect(echo.port, other_client)).echoed)
            accepted.append((await connect(echo.port, trusting_client(material, "alice"))).echoed)
            # Back to the one CA: OpenSSL cannot forget the other.
            ca_file.write_bytes(own_ca)
            assert reloading.check() is Reload.RELOADED
            accepted.append((await connect(echo.port, other_client)).echoed)

    run("uvloop", main())
    assert accepted == [False, True, True, True]
    removed = [r.getMessage() for r in caplog.records if "stay trusted" in r.getMessage()]
    assert len(removed) == 1 and "CN=Untrusted Test CA" in removed[0]
