"""Routing configuration as code: the YAML routing tree, receivers and inhibition rules, validated with errors
that name the YAML path and line (`route.routes[1].group_wait (line 14): invalid duration '5x'`).

The format follows Alertmanager's so an SRE can read it without a manual:

    route:
      receiver: team-default
      group_by: [alertname, cluster, namespace]     # ['...'] groups by every label
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: ['severity="critical"', 'event_type=~"alert|recovery.escalated"']
          receiver: pager
          continue: true
    receivers:
      - name: pager
        pagerduty_configs: [{routing_key: "${PD_KEY}"}]
    inhibit_rules:
      - source_matchers: ['severity="critical"']
        target_matchers: ['severity="warning"']
        equal: [namespace, alertname]

Besides an alert's own labels, every event carries `event_type` (`alert` for fired and resolved alike, so an
alert and its resolution route together; `<family>.<verb>` for the rest, e.g. `recovery.escalated`), and
`cluster`. Child routes inherit receiver, group_by and the three timers from their parent.

`${NAME}` in a string is replaced from the `env` mapping given to `parse_config` (secrets stay out of the
file); an unset variable is an error naming it. A secret field may instead hold a reference to a Kubernetes
Secret (`{secretKeyRef: {name, key}}`) or to a value stored by the notifier (`{secretRef: name}`), see
`opsbus.notifier.domain.secrets`: `secret_references` names what the caller must fetch, and `parse_config`
takes the fetched values as `secrets`. This module does no I/O: the caller reads the file and the secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

import jinja2
import jinja2.sandbox
import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from opsbus.notifier.domain.durations import parse_duration
from opsbus.notifier.domain.integrations import (  # re-exported: the parts of a receiver
    AliyunSmsConfig,
    DingTalkConfig,
    DiscordConfig,
    EmailConfig,
    FeishuConfig,
    GoogleChatConfig,
    MsTeamsConfig,
    OpsgenieConfig,
    PagerDutyConfig,
    SlackConfig,
    TelegramConfig,
    TwilioConfig,
    WebexConfig,
    WebhookConfig,
    WeComConfig,
    _Integration,
    _Strict,
)
from opsbus.notifier.domain.matchers import Matcher, MatcherError, parse_all
from opsbus.notifier.domain.secrets import Resolved, SecretRef, is_reference, parse_reference, resolve

ALL_LABELS = "..."
# Templates come from whoever may edit the configuration: sandboxed (no attribute tricks, no mutation), strict
# about unknown names. The renderer uses the same settings.
# No autoescape: titles and texts are plain text put into JSON bodies and mails, escaped per channel.
TEMPLATE_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: its YAML path (`route.routes[1].group_wait`, `<root>`), 1-based line when known, message."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.path == "<root>" and self.message.startswith("not valid YAML"):
            return self.message  # it names its line and column itself
        return f"{self.path}" + (f" (line {self.line})" if self.line else "") + f": {self.message}"


class ConfigError(ValueError):
    """The configuration is invalid; `issues` lists every error, `problems` the same as `path (line N): message`."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        self.problems = tuple(str(i) for i in self.issues)
        super().__init__("invalid notifier configuration:\n  " + "\n  ".join(self.problems))


# --- the YAML schema ---------------------------------------------------------------------------------


def _matchers(value: list[str]) -> list[str]:
    for text in value:
        try:
            Matcher.parse(text)
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
    return value


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class TemplatesConfig(_Strict):
    """Jinja2 (sandboxed) replacing the default title and text of every message this receiver gets; see
    `opsbus.notifier.rendering` for the variables (`n`, `firing`, `links(a)`, `fence`)."""

    title: str | None = Field(default=None, min_length=1, max_length=2_000)
    text: str | None = Field(default=None, min_length=1, max_length=50_000)


class ReceiverConfig(_Strict):
    name: str = Field(min_length=1, max_length=200)
    templates: TemplatesConfig | None = None
    language: Literal["en", "zh-CN"] = Field(
        default="en", description="The language of the default messages: English or Simplified Chinese."
    )
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    msteams_configs: list[MsTeamsConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerDutyConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    dingtalk_configs: list[DingTalkConfig] = Field(default_factory=list)
    wecom_configs: list[WeComConfig] = Field(default_factory=list)
    feishu_configs: list[FeishuConfig] = Field(default_factory=list)
    aliyun_sms_configs: list[AliyunSmsConfig] = Field(default_factory=list)
    twilio_configs: list[TwilioConfig] = Field(default_factory=list)
    opsgenie_configs: list[OpsgenieConfig] = Field(default_factory=list)
    telegram_configs: list[TelegramConfig] = Field(default_factory=list)
    discord_configs: list[DiscordConfig] = Field(default_factory=list)
    googlechat_configs: list[GoogleChatConfig] = Field(default_factory=list)
    webex_configs: list[WebexConfig] = Field(default_factory=list)

    def integrations(self) -> list[tuple[str, int, _Integration]]:
        """(kind, index, config) of every integration, in a stable order; an SMS configuration is one integration
        per recipient number."""
        out: list[tuple[str, int, _Integration]] = []
        for kind, configs in (
            ("webhook", self.webhook_configs),
            ("slack", self.slack_configs),
            ("msteams", self.msteams_configs),
            ("pagerduty", self.pagerduty_configs),
            ("email", self.email_configs),
            ("dingtalk", self.dingtalk_configs),
            ("wecom", self.wecom_configs),
            ("feishu", self.feishu_configs),
            ("opsgenie", self.opsgenie_configs),
            ("telegram", self.telegram_configs),
            ("discord", self.discord_configs),
            ("googlechat", self.googlechat_configs),
            ("webex", self.webex_configs),
        ):
            out.extend((kind, index, config) for index, config in enumerate(configs))
        for kind, sms in (("aliyun_sms", self.aliyun_sms_configs), ("twilio", self.twilio_configs)):
            # one integration per recipient: its own retries and rate limit
            each = [config.model_copy(update={"to": [number]}) for config in sms for number in config.to]
            out.extend((kind, index, config) for index, config in enumerate(each))
        return out


class RouteConfig(_Strict):
    receiver: str | None = None
    matchers: Annotated[list[str], Field(default_factory=list)]
    group_by: list[str] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteConfig] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _check_matchers = field_validator("matchers")(_matchers)
    _check_durations = field_validator("group_wait", "group_interval", "repeat_interval")(_duration)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and ALL_LABELS in value and len(value) > 1:
            raise ValueError("'...' (group by every label) cannot be combined with other labels")
        return value


class InhibitRuleConfig(_Strict):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    _check = field_validator("source_matchers", "target_matchers")(_matchers)


class ConfigFile(_Strict):
    route: RouteConfig
    receivers: list[ReceiverConfig] = Field(min_length=1)
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ConfigFile:
        names = [r.name for r in self.receivers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receiver names must be unique: {', '.join(duplicates)}")
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a receiver")
        return self


# --- the resolved tree -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GroupOptions:
    group_by: tuple[str, ...]  # ("...",) groups by every label
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta

    @property
    def by_all(self) -> bool:
        return self.group_by == (ALL_LABELS,)


@dataclass(frozen=True, slots=True)
class Route:
    """A route with inheritance applied. `id` is its position in the tree (`0`, `0.1`, `0.1.0`)."""

    id: str
    receiver: str
    matchers: tuple[Matcher, ...]
    options: GroupOptions
    continue_: bool
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    root: Route
    receivers: Mapping[str, ReceiverConfig]
    inhibit_rules: tuple[InhibitRule, ...]
    source: ConfigFile

    def routes(self) -> list[Route]:
        out: list[Route] = []
        stack = [self.root]
        while stack:
            route = stack.pop()
            out.append(route)
            stack.extend(reversed(route.routes))
        return out


DEFAULTS = GroupOptions(
    group_by=("alertname", "cluster", "namespace"),
    group_wait=timedelta(seconds=30),
    group_interval=timedelta(minutes=5),
    repeat_interval=timedelta(hours=4),
)


def _resolve(
    cfg: RouteConfig,
    parent: Route | None,
    *,
    route_id: str,
    receivers: set[str],
    path: Path,
    problems: list[tuple[Path, str]],
) -> Route:
    inherited = parent.options if parent else DEFAULTS
    options = GroupOptions(
        group_by=tuple(cfg.group_by) if cfg.group_by is not None else inherited.group_by,
        group_wait=parse_duration(cfg.group_wait) if cfg.group_wait else inherited.group_wait,
        group_interval=parse_duration(cfg.group_interval) if cfg.group_interval else inherited.group_interval,
        repeat_interval=parse_duration(cfg.repeat_interval) if cfg.repeat_interval else inherited.repeat_interval,
    )
    if options.group_interval <= timedelta(0):
        problems.append(((*path, "group_interval"), "must be greater than 0"))
    if options.repeat_interval <= timedelta(0):
        problems.append(((*path, "repeat_interval"), "must be greater than 0"))
    receiver = cfg.receiver or (parent.receiver if parent else "")
    if cfg.receiver is not None and cfg.receiver not in receivers:
        problems.append(((*path, "receiver"), f"unknown receiver {cfg.receiver!r}"))
    if parent is None and cfg.matchers:
        problems.append(((*path, "matchers"), "the root route matches everything and takes no matchers"))
    if parent is None and cfg.continue_:
        problems.append(((*path, "continue"), "the root route cannot have continue"))
    node = Route(
        id=route_id,
        receiver=receiver,
        matchers=parse_all(cfg.matchers),
        options=options,
        continue_=cfg.continue_,
        routes=(),
    )
    children = tuple(
        _resolve(
            child, node, route_id=f"{route_id}.{i}", receivers=receivers, path=(*path, "routes", i), problems=problems
        )
        for i, child in enumerate(cfg.routes)
    )
    return Route(node.id, node.receiver, node.matchers, node.options, node.continue_, children)


# --- YAML with line numbers --------------------------------------------------------------------------
def _lines(node: yaml.Node, path: Path, out: dict[Path, int], content: dict[Path, int]) -> None:
    """`out`: the line of every path; `content`: the line where a string value's text starts (after `|`)."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        content[path] = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            out[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), out, content)
            out[(*path, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out, content)


def _is_secret_field(path: Path) -> bool:
    """`receivers[i].<kind>[j].<field>` where the field holds a secret."""
    return (
        len(path) == 5
        and path[0] == "receivers"
        and isinstance(path[2], str)
        and path[4] in SECRET_FIELDS.get(path[2], ())
    )


def _reference(value: Any, path: Path, problems: list[tuple[Path, str]], secrets: Resolved | None) -> str:
    """The value a reference stands for; a problem (and "") when it is malformed, misplaced or unresolved."""
    try:
        if not _is_secret_field(path):
            raise ValueError("a secret reference is only accepted in a secret field (url, secret, ...)")
        return resolve(parse_reference(value), secrets)
    except ValueError as exc:
        problems.append((path, str(exc)))
        return ""


def _substitute(
    value: Any, env: Mapping[str, str], path: Path, problems: list[tuple[Path, str]], secrets: Resolved | None = None
) -> Any:
    if is_reference(value):
        return _reference(value, path, problems, secrets)
    if isinstance(value, str):

        def replace(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in env:
                problems.append((path, f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, (*path, str(k)), problems, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, (*path, i), problems, secrets) for i, v in enumerate(value)]
    return value


def _path_text(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def _issue(path: Path, lines: Mapping[Path, int], message: str) -> Issue:
    probe = path
    while probe and probe not in lines:
        probe = probe[:-1]
    return Issue(_path_text(path), lines.get(probe), message)


def _yaml_path(loc: tuple[int | str, ...]) -> Path:
    aliases = {"continue_": "continue", "sender": "from"}
    return tuple(aliases.get(p, p) if isinstance(p, str) else p for p in loc)


def _compose(text: str, content: dict[Path, int] | None = None) -> tuple[dict[str, Any], dict[Path, int]]:
    """The YAML as plain data and the line of every path in it; `ConfigError` when it is not a YAML mapping."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        message = f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
        raise ConfigError([Issue("<root>", mark.line + 1 if mark is not None else None, message)]) from None
    if not isinstance(raw, dict) or node is None:
        raise ConfigError([Issue("<root>", None, "the configuration must be a mapping with route and receivers")])
    lines: dict[Path, int] = {}
    _lines(node, (), lines, {} if content is None else content)
    return raw, lines


# Fields holding secrets, per integration list. PagerDuty's `url` is the public Events API endpoint.
SECRET_FIELDS: Mapping[str, tuple[str, ...]] = {
    "webhook_configs": ("url", "secret"),
    "slack_configs": ("url",),
    "msteams_configs": ("url",),
    "pagerduty_configs": ("routing_key",),
    "email_configs": ("auth_password",),
}
REDACTED = "<redacted>"


def _secret_values(raw: Mapping[str, Any]) -> list[tuple[Path, str]]:
    return [(path, value) for path, value in _secret_fields(raw) if isinstance(value, str) and value]


def _secret_fields(raw: Mapping[str, Any]) -> list[tuple[Path, Any]]:
    found: list[tuple[Path, Any]] = []
    receivers = raw.get("receivers")
    if not isinstance(receivers, list):
        return found
    for i, receiver in enumerate(receivers):
        if not isinstance(receiver, dict):
            continue
        for kind, fields in SECRET_FIELDS.items():
            configs = receiver.get(kind)
            for j, cfg in enumerate(configs if isinstance(configs, list) else []):
                for name in fields:
                    value = cfg.get(name) if isinstance(cfg, dict) else None
                    if value is not None:
                        found.append((("receivers", i, kind, j, name), value))
    return found


def secret_references(text: str) -> frozenset[SecretRef]:
    """The Kubernetes Secret keys and stored secrets the configuration's secret fields refer to (malformed
    references are left to `parse_config`, which names them); `ConfigError` when the text is not a mapping."""
    raw, _ = _compose(text)
    found: set[SecretRef] = set()
    for _, value in _secret_fields(raw):
        if is_reference(value):
            try:
                found.add(parse_reference(value))
            except ValueError:
                continue
    return frozenset(found)


def literal_secrets(text: str) -> list[Issue]:
    """Secret fields whose value is written out instead of taken from `${VARIABLE}`: a configuration stored
    through the API is readable back (get_config), so its secrets must live in the notifier's environment."""
    raw, lines = _compose(text)
    return [
        _issue(path, lines, "a secret must come from the environment: write ${VARIABLE}, not the value")
        for path, value in _secret_values(raw)
        if not _ENV.search(value)
    ]


def redact_secrets(text: str) -> tuple[str, bool]:
    """`text` with every literal secret value replaced by `<redacted>`, and whether anything was replaced.
    Text that is not a YAML mapping is returned as is (it was never accepted, so it holds no live secret)."""
    try:
        raw, _ = _compose(text)
    except ConfigError:
        return text, False
    changed = False
    for _, value in sorted(_secret_values(raw), key=lambda found: len(found[1]), reverse=True):
        if not _ENV.search(value) and value in text:
            text, changed = text.replace(value, REDACTED), True
    return text, changed


def _template_problems(
    templates: TemplatesConfig | None, path: Path, content: Mapping[Path, int]
) -> list[tuple[Path, str]]:
    """Syntax errors of a receiver's templates, each with its line in the template and in the YAML."""
    found: list[tuple[Path, str]] = []
    for name in ("title", "text"):
        source = getattr(templates, name) if templates else None
        if source is None:
            continue
        try:
            TEMPLATE_ENV.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            start = content.get((*path, name))
            where = f"template line {exc.lineno}" + (f", YAML line {start + exc.lineno - 1}" if start else "")
            found.append(((*path, name), f"invalid template ({where}): {exc.message}"))
    return found


def parse_config(text: str, env: Mapping[str, str] | None = None, secrets: Resolved | None = None) -> NotifierConfig:
    """Parse and validate the YAML, taking `${VARIABLE}`s from `env` and references from `secrets` (fetched for
    `secret_references(text)`); `ConfigError` lists every problem with its YAML path and line."""
    content: dict[Path, int] = {}
    raw, lines = _compose(text, content)
    problems: list[tuple[Path, str]] = []
    raw = _substitute(raw, {} if env is None else env, (), problems, secrets)
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:  # a failed substitution left "" behind: say why, not only that it is empty
        messages = [_issue(path, lines, message) for path, message in problems]
        for error in exc.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            if (path := _yaml_path(error["loc"])) not in {p for p, _ in problems}:
                messages.append(_issue(path, lines, message))
        raise ConfigError(messages) from None
    root = _resolve(
        parsed.route,
        None,
        route_id="0",
        receivers={r.name for r in parsed.receivers},
        path=("route",),
        problems=problems,
    )
    rules = tuple(
        InhibitRule(parse_all(r.source_matchers), parse_all(r.target_matchers), tuple(r.equal))
        for r in parsed.inhibit_rules
    )
    for index, receiver in enumerate(parsed.receivers):
        problems.extend(_template_problems(receiver.templates, ("receivers", index, "templates"), content))
    if problems:
        raise ConfigError([_issue(path, lines, message) for path, message in problems])
    return NotifierConfig(
        root=root, receivers={r.name: r for r in parsed.receivers}, inhibit_rules=rules, source=parsed
    )


ChannelKindName = Literal["webhook", "slack", "msteams", "pagerduty", "email"]
