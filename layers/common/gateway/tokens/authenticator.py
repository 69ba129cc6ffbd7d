"""One object a handler keeps for its warm life: settings, key set and verifier, kept in step.

When the settings change (a rotated secret, a new JWKS URL), the verifier is rebuilt; the key set
cache survives as long as its URL stays the same, so a settings refresh costs no JWKS fetch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .jwks import JwksCache
from .settings import SettingsSource, TokenSettings
from .verify import Identity, TokenVerifier

__all__ = ["Authenticator"]


class Authenticator:
    """Verify tokens with settings read at run time (see :class:`SettingsSource`).

    ``key_set`` builds the :class:`JwksCache` for a URL; tests pass one with a fake clock.
    """

    def __init__(
        self,
        source: SettingsSource | None = None,
        *,
        key_set: Callable[[str], JwksCache] = JwksCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source if source is not None else SettingsSource()
        self._key_set = key_set
        self._clock = clock
        self._lock = threading.Lock()
        self._settings: TokenSettings | None = None
        self._verifier: TokenVerifier | None = None

    def verifier(self) -> TokenVerifier:
        """The verifier for the current settings; may read the settings (cached by the source)."""
        settings = self.source.get()
        verifier = self._verifier
        if verifier is not None and settings is self._settings:
            return verifier
        with self._lock:
            if self._verifier is None or settings is not self._settings:
                self._verifier = self._build(settings)
                self._settings = settings
            return self._verifier

    def authenticate(self, token: str) -> Identity:
        """Verify ``token``; raises a :class:`~gateway.tokens.TokenError` subclass when it fails."""
        return self.verifier().verify(token)

    def _build(self, settings: TokenSettings) -> TokenVerifier:
        keys = None
        if settings.uses_key_set and settings.jwks_url:
            previous = self._verifier.keys if self._verifier is not None else None
            if previous is not None and previous.url == settings.jwks_url:
                keys = previous
            else:
                keys = self._key_set(settings.jwks_url)
        return TokenVerifier(settings, keys, clock=self._clock)
