"""The gateway's settings: `OPSBUS_GATEWAY__*` on top of the shared `ServiceSettings`. Built in `main()`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from opsbus.common.settings import ServiceSettings


class OidcSettings(BaseModel):
    """OIDC/JWT bearer tokens, validated against the issuer's JWKS. Unset `jwks_url`: JWTs are refused.

    With `issuer`, `jwks_url` and `client_id` set the console also offers "Sign in with SSO": the gateway runs
    the authorization code flow with PKCE against the issuer (endpoints from its discovery document) and checks
    the ID token with these same keys, algorithms and claim mapping (its audience is `client_id`)."""

    issuer: str | None = Field(default=None, description="Expected `iss` claim.")
    audience: str | None = Field(default=None, description="Expected `aud` claim.")
    jwks_url: str | None = Field(default=None, description="Where the signing keys are published.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwks_cache_seconds: float = Field(default=300.0, gt=0, description="Signing keys are refetched after this.")
    leeway_seconds: float = Field(default=30.0, ge=0, description="Clock skew tolerated on exp/nbf/iat.")
    role_claim: str = Field(default="opsbus_role", description="Claim holding viewer, operator or admin.")
    namespaces_claim: str = Field(default="opsbus_namespaces", description="Claim listing namespaces (or `*`).")
    clusters_claim: str = Field(default="opsbus_clusters", description="Claim listing clusters (or `*`).")
    default_role: str | None = Field(default=None, description="Role when the claim is absent; None: refuse.")
    client_id: str | None = Field(default=None, description="The console's client at the issuer (SSO sign-in).")
    client_secret: SecretStr | None = Field(default=None, description="Its secret (confidential client).")
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        description="Scopes asked for at SSO sign-in; add the one that releases the role/namespace claims.",
    )
    acr_values: str | None = Field(
        default=None, description="Asked for at SSO sign-in (e.g. an MFA level); the issuer enforces it."
    )

    @property
    def sign_in_enabled(self) -> bool:
        return bool(self.issuer and self.jwks_url and self.client_id)


class AlertmanagerSettings(BaseModel):
    """The webhook receiver's own credentials (Alertmanager's `http_config`): a bearer token or basic auth."""

    bearer_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None


class ZabbixSettings(AlertmanagerSettings):
    """The Zabbix receiver's own credentials: the bearer token the opsbus media type sends (or basic auth); and
    the acknowledgement back (`opsbus.gateway.zabbixack`): with `api_url` and `api_token` set, a problem opsbus
    healed is acknowledged in Zabbix with a message and the incident's link (none are made without them)."""

    api_url: str | None = Field(
        default=None, description="Zabbix's JSON-RPC endpoint, e.g. https://zabbix.example.com/api_jsonrpc.php."
    )
    api_token: SecretStr | None = Field(
        default=None, description="A Zabbix API token (5.4+: Users > API tokens) of a user allowed to acknowledge."
    )
    acknowledge: bool = Field(default=True, description="Mark the problem acknowledged beside the message.")
    close: bool = Field(default=False, description="Also close the problem (its trigger must allow manual close).")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Per JSON-RPC call.")
    attempts: int = Field(default=3, ge=1, le=10, description="Calls per delivery on transport errors (backoff).")


class ConsoleSettings(BaseModel):
    """The web console the gateway serves at `/` and its sessions (the gateway as backend-for-frontend)."""

    session_ttl_seconds: int = Field(default=8 * 3600, ge=60, description="A sign-in lasts this long.")
    insecure_loopback_cookie: bool = Field(
        default=False,
        description="Development only: omit `Secure` on the session cookie for requests to http://127.0.0.1 or "
        "http://localhost (a browser drops Secure cookies over plain HTTP elsewhere). Never in production.",
    )
    assets_dir: str | None = Field(
        default=None, description="Where the built console is; default: the copy inside the gateway package."
    )
    jaeger_url: str | None = Field(
        default=None, description="Jaeger's UI (e.g. http://127.0.0.1:16686): incidents link to their trace."
    )


class SlackApprover(BaseModel):
    """Who a Slack user is in opsbus when they click Approve or Reject: the identity recorded as the decision's
    actor, and the role and scope it is judged with (the same checks as the API)."""

    identity: str = Field(min_length=1, max_length=253, description="The opsbus identity, e.g. the OIDC e-mail.")
    role: Literal["viewer", "operator", "admin"] = Field(default="operator", description="Deciding needs operator.")
    namespaces: list[str] = Field(default_factory=lambda: ["*"], description="Namespaces they may decide in.")
    clusters: list[str] = Field(default_factory=lambda: ["*"], description="Clusters they may decide in.")


class SlackSettings(BaseModel):
    """Slack interactivity: Approve/Reject clicks posted to `/v1/integrations/slack/interactions`.

    Unset `signing_secret`: the endpoint refuses every request (401). The secret comes from the environment (the
    chart takes it from a Kubernetes Secret); it is never logged or echoed."""

    signing_secret: SecretStr | None = Field(default=None, description="The Slack app's signing secret.")
    max_age_seconds: int = Field(default=300, ge=1, le=3600, description="Older request timestamps are refused.")
    approvers: dict[str, SlackApprover] = Field(
        default_factory=dict, description="Slack user id (e.g. `U024BE7LH`) -> opsbus approver; others are refused."
    )
    response_url_prefix: str = Field(
        default="https://hooks.slack.com/",
        description="The message is updated through the click's `response_url` only when it starts with this.",
    )


class FeishuSettings(BaseModel):
    """Feishu/Lark card actions: Approve/Reject clicks on the notifier's app-bot cards, posted to
    `/v1/integrations/feishu/card-actions` (the app's callback request URL).

    Unset `verification_token`: the endpoint refuses every request (401). With `encrypt_key` (recommended),
    every click must carry Feishu's `X-Lark-Signature` and may arrive encrypted. Both come from the environment
    (the chart takes them from a Kubernetes Secret); they are never logged or echoed."""

    verification_token: SecretStr | None = Field(default=None, description="The app's Verification Token.")
    encrypt_key: SecretStr | None = Field(
        default=None, description="The app's Encrypt Key: signed, encrypted requests."
    )
    max_age_seconds: int = Field(default=300, ge=1, le=3600, description="Older request timestamps are refused.")
    approvers: dict[str, SlackApprover] = Field(
        default_factory=dict,
        description="Feishu open_id (`ou_...`) or user_id -> opsbus approver; others are refused.",
    )


class GatewayOptions(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="API port (0 picks a free one).")
    public_url: str | None = Field(default=None, description="Base URL clients reach the gateway at.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Larger request bodies get 413.")
    rate_per_second: float = Field(default=50.0, gt=0, description="Sustained requests per second per caller.")
    rate_burst: int = Field(default=100, ge=1, description="Requests a caller may burst above the rate.")
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, description="How long a service may take to answer.")
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After sent with 503.")
    key_cache_seconds: float = Field(
        default=5.0, ge=0, description="Verified keys are cached this long (a revocation elsewhere takes this long)."
    )
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, description="Comment lines keep idle streams open.")
    sse_queue: int = Field(default=1000, ge=1, description="Events buffered per stream client before it is dropped.")
    sse_max_clients: int = Field(default=500, ge=1)
    audit_retention_days: int = Field(default=400, ge=1)
    incident_retention_days: int = Field(default=30, ge=1)
    change_retention_days: int = Field(default=30, ge=1, description="How long the change timeline is kept.")
    cors_origins: list[str] = Field(default_factory=list, description="Empty: CORS off.")
    oidc: OidcSettings = OidcSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    zabbix: ZabbixSettings = ZabbixSettings()
    console: ConsoleSettings = ConsoleSettings()
    slack: SlackSettings = SlackSettings()
    feishu: FeishuSettings = FeishuSettings()


class GatewaySettings(ServiceSettings):
    gateway: GatewayOptions = GatewayOptions()
