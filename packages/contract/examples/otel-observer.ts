/**
 * An OpenTelemetry adapter for `withObserver`, as an example (no dependency is added to the contract).
 * With @opentelemetry/api installed:
 *
 *   import { metrics, trace } from "@opentelemetry/api";
 *   const meter = metrics.getMeter("roder-runners");
 *   const duration = meter.createHistogram("runner.operation.duration", { unit: "ms" });
 *   const bytes = meter.createCounter("runner.operation.bytes", { unit: "By" });
 *   const tracer = trace.getTracer("roder-runners");
 *
 * and pass `otelObserver({ duration, bytes, tracer })` below.
 */
import type { RunnerObserver } from "@roder/runner-contract";

interface Histogram {
  record(value: number, attributes?: Record<string, string | number | boolean>): void;
}
interface Counter {
  add(value: number, attributes?: Record<string, string | number | boolean>): void;
}
interface Tracer {
  startSpan(
    name: string,
    options?: { startTime?: number; attributes?: Record<string, string | number | boolean> },
  ): {
    setStatus(s: { code: number; message?: string }): void;
    end(endTime?: number): void;
  };
}

export function otelObserver(o: { duration: Histogram; bytes: Counter; tracer: Tracer }): RunnerObserver {
  return (e) => {
    const attributes = {
      "runner.provider": e.provider,
      "runner.operation": e.operation,
      "runner.outcome": e.outcome,
      "runner.retries": e.retries,
      ...(e.error_code ? { "runner.error_code": e.error_code } : {}),
    };
    o.duration.record(e.duration_ms, attributes);
    if (e.bytes_in) o.bytes.add(e.bytes_in, { ...attributes, "runner.direction": "in" });
    if (e.bytes_out) o.bytes.add(e.bytes_out, { ...attributes, "runner.direction": "out" });
    const end = Date.now();
    const span = o.tracer.startSpan(`runner.${e.operation}`, { startTime: end - e.duration_ms, attributes });
    span.setStatus({ code: e.outcome === "ok" ? 1 : 2, ...(e.error_code ? { message: e.error_code } : {}) });
    span.end(end);
  };
}

// A console stand-in, so the example runs as is: pnpm exec tsx packages/contract/examples/otel-observer.ts
const log = (name: string) => ({
  record: (v: number, a?: object) => console.log(name, v.toFixed(1), a),
  add: (v: number, a?: object) => console.log(name, v, a),
});
const observer = otelObserver({
  duration: log("duration"),
  bytes: log("bytes"),
  tracer: { startSpan: (n) => ({ setStatus: () => {}, end: () => console.log("span", n) }) },
});
observer({
  provider: "unix-local",
  operation: "writeFile",
  session_id: "s",
  duration_ms: 3.2,
  bytes_out: 1024,
  retries: 0,
  outcome: "ok",
});
