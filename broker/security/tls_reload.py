"""New certificates without a restart.

A listener's server is created once with one SSLContext (`loop.create_server(ssl=...)`
keeps that object), and OpenSSL copies a context's certificate and key into each new
connection at its start. So loading new files into the same context serves them from
the next handshake on, while connections already open keep what they began with.

`ReloadingContext.check()` is cheap (three stat calls) and meant to be called every few
seconds. A change is noticed by mtime, size, inode and device, which also catches a
Kubernetes secret volume's symlink swap. New files are read and checked as a whole
before any of them touches the live context: a half-written file, a key that belongs to
another certificate, or a wrong password leaves the old certificate serving, and the
problem is logged once for that state of the files.

The CA file is the exception: OpenSSL can add trusted CAs to a context but not remove
them, so a CA taken out of `ssl_cafile` stays trusted by this listener until a restart.
That is logged too, naming the CAs.
"""

from __future__ import annotations

import enum
import logging
import os
import ssl
from pathlib import Path

from broker.config import ConfigError
from broker.security.tls import (
    KeyMaterial,
    TlsSettings,
    build_server_context,
    load_into,
    read_key_material,
)

log = logging.getLogger(__name__)

# Per file: (mtime_ns, size, inode, device), or None when it cannot be stat'ed.
Fingerprint = tuple[tuple[int, int, int, int] | None, ...]


class Reload(enum.Enum):
    UNCHANGED = "unchanged"  # the files are as last seen (loaded, or known broken)
    RELOADED = "reloaded"  # new handshakes use the new files
    FAILED = "failed"  # the files changed but cannot be used; the old ones serve


class ReloadingContext:
    """Owns the listener's SSLContext (`.context`) and reloads its files into it."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        # Stat first, then read: a file changed while being read then shows as changed
        # at the next check, never the other way round.
        self._seen = self._fingerprint()
        self.material = self._read()
        self.context: ssl.SSLContext = build_server_context(settings, self.material)
        self.last_error: str | None = None

    def check(self) -> Reload:
        """Reloads when the files changed. Never raises for bad files: `last_error` holds
        the reason while the files on disk are not the ones served."""
        seen = self._fingerprint()
        if seen == self._seen:
            return Reload.UNCHANGED
        self._seen = seen
        try:
            material = self._read()
        except ConfigError as exc:
            self.last_error = str(exc)
            log.warning("TLS files changed but are not usable, still serving the old ones: %s", exc)
            return Reload.FAILED
        try:
            load_into(self.context, material)
        except ssl.SSLError as exc:
            # Checked above, so unexpected; the context may now hold the new chain with
            # the old key, so put the old pair back before anything handshakes with it.
            load_into(self.context, self.material)
            self.last_error = f"OpenSSL refused the new TLS files ({exc.reason})"
            log.warning("%s, still serving the old ones", self.last_error)
            return Reload.FAILED
        self._warn_about_removed_cas(material)
        self.material, self.last_error = material, None
        log.info(
            "TLS certificate reloaded: %s, serial %x, valid until %s",
            material.leaf.subject.rfc4514_string(),
            material.leaf.serial_number,
            material.leaf.not_valid_after_utc.isoformat(),
        )
        return Reload.RELOADED

    def _read(self) -> KeyMaterial:
        s = self.settings
        return read_key_material(s.ssl_certfile, s.ssl_keyfile, s.ssl_key_password, s.ssl_cafile)

    def _paths(self) -> list[Path]:
        s = self.settings
        return [s.ssl_certfile, s.ssl_keyfile, *([s.ssl_cafile] if s.ssl_cafile else [])]

    def _fingerprint(self) -> Fingerprint:
        prints: list[tuple[int, int, int, int] | None] = []
        for path in self._paths():
            try:
                st = os.stat(path)
            except OSError:
                prints.append(None)
            else:
                prints.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
        return tuple(prints)

    def _warn_about_removed_cas(self, material: KeyMaterial) -> None:
        kept = set(material.cas)
        removed = [ca for ca in self.material.cas if ca not in kept]
        if removed:
            names = "; ".join(ca.subject.rfc4514_string() for ca in removed)
            log.warning(
                "CA certificates removed from %s stay trusted until restart: %s",
                self.settings.ssl_cafile,
                names,
            )
