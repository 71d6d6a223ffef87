"""OpenTelemetry SDK setup of one demo process: traces, logs and metrics over OTLP/HTTP.

Everything here is the official SDK used the ordinary way, so the demo system's telemetry
is what any instrumented Python service sends: a `Resource` with `service.name`,
`service.instance.id` and `host.name`; batch span and log processors; a periodic metric
reader; the SDK's `LoggingHandler` on the root logger, so log records carry the trace and
span ids of the request they were written in. Process CPU and memory (RSS) are
observable gauges read with psutil at every export.

`endpoint` is the OTLP/HTTP base URL (``http://127.0.0.1:4318``; the exporters add
``/v1/traces``, ``/v1/logs`` and ``/v1/metrics``) or ``"console"`` to print everything.
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

#: Batch processors send at least this often (ms): telemetry of a request is at the
#: collector about a second after it ended.
SCHEDULE_DELAY_MS = 500


@dataclass
class Telemetry:
    """The providers of one process; `shutdown` flushes and stops them."""

    tracer_provider: Any
    meter_provider: Any
    logger_provider: Any
    handler: logging.Handler

    def shutdown(self) -> None:
        """Flush every buffered span, log record and metric point, then stop exporting."""
        logging.getLogger().removeHandler(self.handler)
        for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
            try:
                provider.shutdown()
            except Exception as exc:  # an exporter that cannot reach the collector
                logging.getLogger(__name__).debug("telemetry shutdown: %s", exc)


def setup_telemetry(
    service: str,
    instance: str,
    endpoint: str,
    *,
    export_interval_ms: int = 1000,
    process_metrics: bool = True,
) -> Telemetry:
    """Install tracer, meter and logger providers exporting to `endpoint` (see module doc)."""
    resource = Resource.create(
        {
            "service.name": service,
            "service.instance.id": instance,
            "host.name": socket.gethostname(),
        }
    )
    span_exporter, log_exporter, metric_exporter = _exporters(endpoint)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(span_exporter, schedule_delay_millis=SCHEDULE_DELAY_MS)
    )
    trace.set_tracer_provider(tracer_provider)

    reader = PeriodicExportingMetricReader(
        metric_exporter, export_interval_millis=export_interval_ms
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    if process_metrics:
        _process_gauges(meter_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(log_exporter, schedule_delay_millis=SCHEDULE_DELAY_MS)
    )
    set_logger_provider(logger_provider)
    with warnings.catch_warnings():
        # the SDK's handler is deprecated in favour of a contrib package we do not need
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    # a formatter makes the record's body the formatted text: message, then any traceback
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return Telemetry(tracer_provider, meter_provider, logger_provider, handler)


def _exporters(endpoint: str) -> tuple[Any, Any, Any]:
    if endpoint == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), ConsoleLogRecordExporter(), ConsoleMetricExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=5),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=5),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=5),
    )


def _process_gauges(meter_provider: Any) -> None:
    """`process.cpu.utilization` (share of one core, 1.0 = a core busy) and
    `process.memory.usage` (resident set size, bytes) of this process."""
    process = psutil.Process()
    process.cpu_percent(None)  # the first reading only starts the measurement
    meter = meter_provider.get_meter("tracehound.shop")

    def cpu(_options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(process.cpu_percent(None) / 100.0)

    def rss(_options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(float(process.memory_info().rss))

    meter.create_observable_gauge(
        "process.cpu.utilization", callbacks=[cpu], unit="1", description="CPU time per second"
    )
    meter.create_observable_gauge(
        "process.memory.usage", callbacks=[rss], unit="By", description="Resident set size"
    )
