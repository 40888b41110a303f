"""How every sentistream command reaches Kafka: servers, TLS and SASL, declared once.

:class:`KafkaConnection` is a pydantic-settings class; the worker's settings inherit it and
``produce``, ``tail``, ``create-topics`` and ``bench`` build it from the same flags and
``SENTISTREAM_*`` variables, so a cluster that asks for SCRAM over TLS is reached the same way
by all of them. :meth:`KafkaConnection.client_config` is the keyword arguments of any
kafka-python client.

The SASL password has no flag (a flag's value is visible to anyone running ``ps``): it comes
from ``SENTISTREAM_SASL_PASSWORD`` or from the file named by ``--sasl-password-file`` (a
mounted Kubernetes or compose secret). It is a :class:`~pydantic.SecretStr`, so it never
appears in a repr, a log line, ``--help`` or a metric.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ENV_PREFIX",
    "RECONNECT_BACKOFF_MAX_MS",
    "ConnectionSettingsError",
    "FailureWatch",
    "KafkaConnection",
]

ENV_PREFIX = "SENTISTREAM_"
#: Longest wait between reconnection attempts to a broker (kafka-python's default: 30 s).
RECONNECT_BACKOFF_MAX_MS = 1_000

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class ConnectionSettingsError(ValueError):
    """The connection settings cannot work together; the message says which and why."""


class KafkaConnection(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SSL (TLS; with a client certificate: mTLS), SASL_PLAINTEXT or "
        "SASL_SSL (user and password over TLS).",
    )
    sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)."
    )
    sasl_username: str = Field("", description="SASL user name.")
    sasl_password: SecretStr = Field(
        SecretStr(""),
        description="SASL password: from this variable only (no flag, so it never shows in "
        "`ps`), or from --sasl-password-file.",
    )
    sasl_password_file: Path | None = Field(
        None,
        description="File holding the SASL password (a mounted secret); trailing newline ignored.",
    )
    ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA certificates to trust (default: the system's).",
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, for mTLS (with --ssl-keyfile)."
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of --ssl-certfile.")
    ssl_check_hostname: bool = Field(
        True,
        description="Check that the broker's certificate names the host connected to.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConnection:
        if self.sasl_password.get_secret_value() and self.sasl_password_file is not None:
            raise ValueError(
                "give the SASL password in SENTISTREAM_SASL_PASSWORD or in "
                "--sasl-password-file, not both"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("--ssl-certfile and --ssl-keyfile go together (mTLS needs both)")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def password(self) -> str:
        """The SASL password, from the variable or the file."""
        if self.sasl_password_file is not None:
            try:
                return self.sasl_password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConnectionSettingsError(
                    f"cannot read the SASL password file {self.sasl_password_file}: "
                    f"{exc.strerror or exc}"
                ) from exc
        return self.sasl_password.get_secret_value()

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for ``KafkaConsumer``, ``KafkaProducer`` or ``KafkaAdminClient``.

        Raises :class:`ConnectionSettingsError` for settings that cannot work (SASL without a
        user or password, a file that does not exist), before any connection is tried.
        """
        config: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",")],
            "security_protocol": self.security_protocol,
            # kafka-python backs off reconnecting exponentially up to 30 s by default (Java
            # clients: 1 s), and backs off its metadata refresh on the same scale while no
            # node is connectable. After a broker restart the two waits compound, and a
            # producer can stay away for most of a minute with labels held in flight. With
            # 1 s it reconnects within about a second.
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        if self.uses_sasl:
            password = self.password()
            if not self.sasl_username or not password:
                raise ConnectionSettingsError(
                    f"{self.security_protocol} needs --sasl-username and a password "
                    "(SENTISTREAM_SASL_PASSWORD or --sasl-password-file)"
                )
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=password,
            )
        if self.uses_tls:
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                path: Path | None = getattr(self, name)
                if path is None:
                    continue
                if not path.is_file():
                    flag = "--" + name.replace("_", "-")
                    raise ConnectionSettingsError(f"{flag} {path}: no such file")
                config[name] = str(path)
            config["ssl_check_hostname"] = self.ssl_check_hostname
        return config

    def describe(self) -> str:
        """Where and how, for a log line (never the password)."""
        how: str = self.security_protocol
        if self.uses_sasl:
            how += f" {self.sasl_mechanism} as {self.sasl_username or '?'}"
        if self.uses_tls and self.ssl_certfile is not None:
            how += " with a client certificate"
        return f"{self.bootstrap_servers} ({how})"

    def environment(self) -> dict[str, str]:
        """These settings as ``SENTISTREAM_*`` variables, for a child process (the password
        included: the environment, unlike the command line, is not shown by ``ps``)."""
        env = {}
        for name in type(self).model_fields:
            if name not in KafkaConnection.model_fields:
                continue
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[ENV_PREFIX + name.upper()] = str(value)
        return env


# -- why a connection failed ---------------------------------------------------------------
#
# kafka-python retries a refused login or a failed TLS handshake until its bootstrap timeout
# and then raises only ``KafkaTimeoutError('Unable to bootstrap ...')``; the cause is in its
# log ("Bootstrap connection to bootstrap-0 failed: <cause>"). :class:`FailureWatch` reads
# those records so the commands can say the cause in one line and stop instead of retrying.

_CAUSES = (
    # (substring of kafka-python's message, kind), most telling first
    ("SaslAuthenticationFailedError", "auth"),
    ("CERTIFICATE_VERIFY_FAILED", "untrusted"),
    ("BAD_CERTIFICATE", "client_cert"),
    ("CERTIFICATE_REQUIRED", "client_cert"),
    ("UNEXPECTED_EOF_WHILE_READING", "not_tls"),
    ("WRONG_VERSION_NUMBER", "not_tls"),
    ("socket disconnected", "disconnected"),
)


class FailureWatch(logging.Handler):
    """Collects the causes kafka-python logs for failed connection attempts.

    Use as a context manager around building a client; :attr:`kinds` holds what was seen.
    """

    LOGGERS = ("kafka.net.manager", "kafka.net.connection")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.kinds: dict[str, str] = {}
        self._saved: list[tuple[logging.Logger, int, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for needle, kind in _CAUSES:
            if needle in message:
                self.kinds.setdefault(kind, message)
                return

    def __enter__(self) -> FailureWatch:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level, logger.propagate))
            if logger.getEffectiveLevel() > logging.WARNING:
                # Our handler must see the records; nobody else wanted them.
                logger.setLevel(logging.WARNING)
                logger.propagate = False
            logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        for logger, level, propagate in self._saved:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate
        self._saved.clear()

    @property
    def fatal(self) -> bool:
        """A cause retrying cannot cure (credentials or certificates), as opposed to a broker
        that is down or a socket closed for an unknown reason."""
        return bool({"auth", "untrusted", "client_cert", "not_tls"} & set(self.kinds))

    def explain(self, connection: KafkaConnection) -> str | None:
        """One sentence about the most telling cause seen, or None."""
        kinds = self.kinds
        if "auth" in kinds:
            return (
                f"authentication failed: the broker refused user {connection.sasl_username!r} "
                f"with {connection.sasl_mechanism} (wrong user name or password; check "
                "--sasl-username and SENTISTREAM_SASL_PASSWORD or --sasl-password-file)"
            )
        if "untrusted" in kinds:
            detail = kinds["untrusted"].split("certificate verify failed:", 1)[-1]
            detail = detail.split("(_ssl", 1)[0].strip()
            return (
                f"TLS: the broker's certificate is not trusted ({detail}); give the CA that "
                "signed it with --ssl-cafile"
            )
        if "client_cert" in kinds:
            return (
                "TLS: the broker refused the client certificate (mTLS): give one signed by a "
                "CA the broker trusts with --ssl-certfile and --ssl-keyfile"
            )
        if "not_tls" in kinds:
            return (
                "TLS handshake failed: the server closed the connection without answering in "
                "TLS; is it a PLAINTEXT listener? check --security-protocol and the port"
            )
        if "disconnected" in kinds and not connection.uses_tls:
            return (
                f"the broker closed every connection at once; with --security-protocol "
                f"{connection.security_protocol} this is usually a listener that expects TLS "
                "(try SSL or SASL_SSL with --ssl-cafile) or SASL"
            )
        return None
