"""Email over SMTP (STARTTLS by default, a private CA when the relay has one). SMTP 4xx replies are retryable,
5xx final, as the SMTP RFCs mean them."""

from __future__ import annotations

import ssl

import aiosmtplib

from opsbus.notifier.channels.base import Outcome
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import EmailConfig
from opsbus.notifier.rendering import Renderer, email_message


class EmailChannel:
    kind = "email"

    def __init__(self, config: EmailConfig, renderer: Renderer, timeout: float) -> None:
        self._config = config
        self._renderer = renderer
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if config.ca_file:
            self._tls = tls_context_from(config.ca_file)

    async def send(self, notification: Notification) -> Outcome:
        cfg = self._config
        host, _, port = cfg.smarthost.rpartition(":")
        message = email_message(
            notification, self._renderer.render(notification, fence=""), sender=cfg.sender, to=cfg.to
        )
        try:
            await aiosmtplib.send(
                message,
                hostname=host,
                port=int(port),
                start_tls=True if cfg.require_tls else None,
                validate_certs=not cfg.tls_insecure_skip_verify,
                tls_context=self._tls,
                username=cfg.auth_username,
                password=cfg.auth_password.get_secret_value() if cfg.auth_password else None,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            retryable = 400 <= exc.code < 500
            return Outcome(False, None, retryable, None, f"SMTP {exc.code}: {exc.message[:200]}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(False, None, True, None, f"SMTP failed ({type(exc).__name__}: {str(exc)[:200]})")
        return Outcome(True, None)


class ChannelConfigError(ValueError):
    """An integration cannot be built from its configuration (a file it names is missing or invalid)."""


def tls_context_from(ca_file: str) -> ssl.SSLContext:
    """A verifying TLS client context trusting only the CAs in `ca_file` (PEM); `ChannelConfigError` naming the
    file and what is wrong with it (missing, unreadable, not PEM certificates)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise ChannelConfigError(f"email ca_file {ca_file}: no such file") from None
    except PermissionError:
        raise ChannelConfigError(f"email ca_file {ca_file}: not readable by the notifier") from None
    except ssl.SSLError as exc:
        raise ChannelConfigError(f"email ca_file {ca_file}: not a PEM CA certificate ({exc.reason})") from None
    except OSError as exc:
        raise ChannelConfigError(f"email ca_file {ca_file}: {exc.strerror}") from None
