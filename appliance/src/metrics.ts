// The appliance's Prometheus metrics: one registry and the metric objects, importable by any
// layer (an HSM adapter records its operations here without knowing about koa). The HTTP
// layer serves `registry.metrics()` at GET /metrics.
//
// Label values are always from small closed sets (route PATTERNS, never raw URLs; a fixed
// list of methods; error codes) so that a client cannot blow up the series count.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly httpInFlight: Gauge;
  readonly errors: Counter<'code'>;
  readonly hsmOperations: Counter<'op' | 'outcome'>;
  readonly hsmDuration: Histogram<'op'>;
  readonly authFailures: Counter<'code'>;
}

/** Seconds; a request is cut at the 30 s default timeout, HSM operations are milliseconds. */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const HSM_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * A fresh registry with every appliance metric (and, unless told otherwise, Node's default
 * process metrics). Tests that want counters of their own create one; the service uses `metrics`.
 */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({
      name: 'yiqian_http_requests_total',
      help: 'HTTP requests answered, by method, matched route pattern ("unmatched" if none) and status.',
      labelNames: ['method', 'route', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: 'yiqian_http_request_duration_seconds',
      help: 'Time from request arrival to the response being handed to Node, by method and route pattern.',
      labelNames: ['method', 'route'] as const,
      buckets: HTTP_BUCKETS,
      registers,
    }),
    httpInFlight: new Gauge({
      name: 'yiqian_http_in_flight',
      help: 'HTTP requests being handled now.',
      registers,
    }),
    errors: new Counter({
      name: 'yiqian_errors_total',
      help: 'Problem responses sent, by stable error code.',
      labelNames: ['code'] as const,
      registers,
    }),
    hsmOperations: new Counter({
      name: 'yiqian_hsm_operations_total',
      help: 'HSM operations (jobs on a token session; op sign-batch is one job of several signatures), by operation and outcome (ok / error).',
      labelNames: ['op', 'outcome'] as const,
      registers,
    }),
    hsmDuration: new Histogram({
      name: 'yiqian_hsm_operation_seconds',
      help: 'HSM operation latency, by operation.',
      labelNames: ['op'] as const,
      buckets: HSM_BUCKETS,
      registers,
    }),
    authFailures: new Counter({
      name: 'yiqian_auth_failures_total',
      help: 'Rejected app authentications, by error code.',
      labelNames: ['code'] as const,
      registers,
    }),
  };
}

/** The process-wide metrics the service exposes. */
export const metrics: Metrics = createMetrics();

/** One HSM operation, as the PKCS#11 adapter observes it. */
export interface HsmOperationEvent {
  /** Short, fixed name such as "sign", "generate", "unwrap" — never a key label. */
  op: string;
  ok: boolean;
  seconds: number;
}

export function recordHsmOperation(e: HsmOperationEvent, m: Metrics = metrics): void {
  m.hsmOperations.inc({ op: e.op, outcome: e.ok ? 'ok' : 'error' });
  if (Number.isFinite(e.seconds) && e.seconds >= 0) m.hsmDuration.observe({ op: e.op }, e.seconds);
}
