// How the clock shows up outside: the /readyz check and the audit record of a clock event.
// Plain values only (no koa, no audit imports): main.ts hands them to the HTTP layer and to
// the audit log.
import type { ClockEvent, TimeSource } from './time-source.js';

/**
 * The `clock` check of /readyz: not ready while UNSYNCED (a load balancer then sends time
 * requests to the other appliance). The detail carries the state, its reasons, the inputs
 * and — for system-trusted — the development notice.
 */
export function clockReadiness(source: TimeSource): { ok: boolean; detail: Record<string, unknown> } {
  const s = source.status();
  return {
    ok: s.state !== 'UNSYNCED',
    detail: {
      state: s.state,
      source: s.source,
      accuracyMicros: s.accuracyMicros,
      since: s.since,
      reasons: s.reasons,
      inputs: s.inputs,
      ...(s.notice ? { notice: s.notice } : {}),
    },
  };
}

/**
 * The audit entry for a clock event (the AuditEntry shape of appliance/src/audit/audit-log.ts):
 * action `clock.state` or `clock.step`, actor `system`. A change to UNSYNCED and every step
 * are recorded with outcome `error`, so that an auditor's filter on failures finds them.
 */
export function clockAuditEntry(e: ClockEvent): { actor: string; action: string; target: string; outcome: 'ok' | 'error'; detail: Record<string, unknown> } {
  if (e.type === 'state') {
    return {
      actor: 'system',
      action: 'clock.state',
      target: e.source,
      outcome: e.to === 'UNSYNCED' ? 'error' : 'ok',
      detail: { at: e.at, from: e.from, to: e.to, reasons: e.reasons, accuracyMicros: e.accuracyMicros },
    };
  }
  return { actor: 'system', action: 'clock.step', target: e.input, outcome: 'error', detail: { at: e.at, input: e.input, stepSeconds: e.stepSeconds, detail: e.detail } };
}
