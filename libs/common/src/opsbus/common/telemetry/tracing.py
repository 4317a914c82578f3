"""OpenTelemetry tracer provider for a service: `opsbus-<service>`, parent-based sampling, OTLP/HTTP export.

The provider is returned, not installed globally, unless `install_global=True` (what `main()` does so that
library instrumentations find it). Tests pass their own provider with an `InMemorySpanExporter`.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from opsbus.common.settings import TelemetrySettings


def build_tracer_provider(
    service: str, settings: TelemetrySettings, *, instance: str | None = None, install_global: bool = False
) -> TracerProvider:
    attributes: dict[str, str] = {"service.name": f"opsbus-{service}", "service.namespace": "opsbus"}
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider
