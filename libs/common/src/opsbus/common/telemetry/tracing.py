"""OpenTelemetry tracer provider for a service: `opsbus-<service>`, incident-keeping sampling, OTLP/HTTP export.

The provider is returned, not installed globally, unless `install_global=True` (what `main()` does so that
library instrumentations find it). Tests pass their own provider with an `InMemorySpanExporter`.

Sampling (`IncidentSampler`): a span follows its parent's decision, which travels in `traceparent` (the sampled
flag) through every event of a chain; a new trace is sampled with probability `sample_ratio`, except that the
publication of an alert (`alert.fired`, the first event of an incident) is always sampled. So at any ratio an
incident's trace is kept whole from the alert on: the healer's, deployer's and notifier's spans are its children
and inherit the decision; only traces that start elsewhere (a deploy request, a scan) are thinned.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from opsbus.common.settings import TelemetrySettings

EVENT_TYPE_ATTRIBUTE = "cloudevents.event_type"
# Event types whose publication starts an incident's trace: always sampled, whatever the ratio.
INCIDENT_ROOTS: tuple[str, ...] = ("io.opsbus.alert.fired.",)


class IncidentSampler(Sampler):
    """Parent-based sampling at `ratio`, except that a span publishing or handling an alert is always sampled."""

    def __init__(self, ratio: float) -> None:
        self._ratio = ratio
        self._default = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(  # noqa: PLR0917 - the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        event_type = attributes.get(EVENT_TYPE_ATTRIBUTE) if attributes else None
        if isinstance(event_type, str) and event_type.startswith(INCIDENT_ROOTS):
            parent_state = trace.get_current_span(parent_context).get_span_context().trace_state
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent_state)
        return self._default.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"IncidentSampler{{ratio={self._ratio}, always={','.join(INCIDENT_ROOTS)}}}"


def build_tracer_provider(
    service: str, settings: TelemetrySettings, *, instance: str | None = None, install_global: bool = False
) -> TracerProvider:
    attributes: dict[str, str] = {"service.name": f"opsbus-{service}", "service.namespace": "opsbus"}
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes), sampler=IncidentSampler(settings.sample_ratio))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider
