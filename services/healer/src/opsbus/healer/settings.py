"""The healer's settings: `OPSBUS_HEALER__*` on top of the shared `OPSBUS_*` groups. Built in `main()`."""

from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, Field

from opsbus.common.settings import ServiceSettings
from opsbus.healer.domain.planning import FreezeWindow, Guards


class FreezeWindowSettings(BaseModel):
    """Absolute (`start`/`end`) or weekly (`weekdays` 0=Monday, `daily_start`/`daily_end`, UTC)."""

    name: str
    start: datetime | None = None
    end: datetime | None = None
    weekdays: list[int] = Field(default_factory=list)
    daily_start: time | None = None
    daily_end: time | None = None


class HealerOptions(BaseModel):
    dry_run: bool = Field(default=False, description="Global dry run: plan and record, never change the cluster.")
    policy_file: str | None = Field(default=None, description="Policy YAML; unset uses the shipped defaults.")
    rate_limit_actions: int = Field(default=10, ge=1, description="Actions allowed cluster-wide per window.")
    rate_limit_window_seconds: float = Field(default=300.0, gt=0)
    protected_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease", "opsbus"]
    )
    freeze_windows: list[FreezeWindowSettings] = Field(default_factory=list)
    freshness_seconds: float = Field(default=900.0, gt=0, description="Older alerts are skipped, not replayed.")
    kubeconfig: str | None = Field(default=None, description="Path; unset uses in-cluster config or ~/.kube/config.")
    verify_poll_seconds: float = Field(default=0.5, gt=0)
    request_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Timeout of every Kubernetes API request (connect and read); one that runs out is retried "
        "like any transient failure instead of holding the recovery.",
    )
    alert_concurrency: int = Field(
        default=64,
        ge=1,
        description="Fired alerts taken in at once per replica (recorded, matched, claimed); each recovery then "
        "walks its ladder in the background, up to max_recoveries.",
    )
    max_recoveries: int = Field(
        default=256,
        ge=1,
        description="Recoveries walked at once per replica (a step's verification can wait minutes); beyond it "
        "the intake of new alerts waits for one to end. Budgets and rate limits still bound the actions.",
    )
    schedule_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each replica looks for deferred recoveries whose due time came (a deferral is "
        "carried out at most this late; one replica takes each).",
    )
    recheck_seconds: float = Field(
        default=30.0, gt=0, description="A recovery deferred by the blast-radius cap is planned again after this."
    )
    lease_seconds: float = Field(
        default=15.0,
        ge=1.0,
        description="A replica holds a recovery this long and renews it every third of it; when a replica dies, "
        "another resumes its recoveries after at most this long.",
    )

    def guards(self) -> Guards:
        return Guards(
            dry_run=self.dry_run,
            rate_limit_actions=self.rate_limit_actions,
            rate_limit_window=self.rate_limit_window_seconds,
            protected_namespaces=frozenset(self.protected_namespaces),
            freeze_windows=tuple(
                FreezeWindow(
                    name=w.name,
                    start=w.start,
                    end=w.end,
                    weekdays=frozenset(w.weekdays),
                    daily_start=w.daily_start,
                    daily_end=w.daily_end,
                )
                for w in self.freeze_windows
            ),
            freshness_seconds=self.freshness_seconds,
            recheck_seconds=self.recheck_seconds,
        )


class HealerSettings(ServiceSettings):
    healer: HealerOptions = HealerOptions()
