// Builds the configured time source (main.ts calls this once): system-trusted for development,
// or a ClockMonitor fed by a gpsd client and/or a chrony reader. State changes and clock steps
// go to the log and to deps.onEvent (main.ts records them in the audit log).
import { ChronyReader } from './chrony-reader.js';
import { ClockMonitor } from './clock-state.js';
import type { TimesourceConfig } from './config-shape.js';
import { GpsdClient } from './gpsd-client.js';
import { SystemTrustedTimeSource } from './system-trusted.js';
import { type ClockEvent, type OpenTimeSource, DEVELOPMENT_NOTICE } from './time-source.js';

/** The part of a pino logger used here (the appliance passes `log.child({ component: 'clock' })`). */
export interface ClockLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface TimeSourceDeps {
  log: ClockLog;
  onEvent?: (e: ClockEvent) => void;
  /** Resolve only once the state is not UNSYNCED, or after this long (default 0: at once). */
  waitForSyncMs?: number;
  /** Re-evaluation interval (default 250 ms): a silent source is UNSYNCED within maxAgeMs + this. */
  tickMs?: number;
  /** gpsd reconnect backoff (default 250 ms doubling to 2000 ms). */
  gpsdBackoff?: { initialMs?: number; maxMs?: number };
}

const hostPort = (host: string, port: number): string => `${host.includes(':') ? `[${host}]` : host}:${port}`;

export async function openTimeSource(cfg: TimesourceConfig, deps: TimeSourceDeps): Promise<OpenTimeSource> {
  const { log } = deps;
  const deliver = (e: ClockEvent): void => {
    try {
      deps.onEvent?.(e);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'clock event listener failed');
    }
  };

  if (cfg.kind === 'system-trusted') {
    log.warn({ timesource: 'system-trusted', notice: DEVELOPMENT_NOTICE }, 'time source: system clock trusted (development only)');
    return new SystemTrustedTimeSource({
      tickMs: deps.tickMs,
      onEvent: (e) => {
        log.warn({ event: e }, 'clock step');
        deliver(e);
      },
    });
  }

  const monitor = new ClockMonitor({
    bounds: cfg.bounds,
    gps: cfg.gpsd && { endpoint: hostPort(cfg.gpsd.host, cfg.gpsd.port), requireFix: cfg.gpsd.requireFix, minMode: cfg.gpsd.minMode, serialLatencyMs: cfg.gpsd.serialLatencyMs },
    chrony: cfg.chrony && { endpoint: hostPort(cfg.chrony.host, cfg.chrony.port) },
    tickMs: deps.tickMs,
    onEvent: (e) => {
      if (e.type === 'state') {
        const fields = { from: e.from, to: e.to, reasons: e.reasons, accuracyMicros: e.accuracyMicros, source: e.source };
        if (e.to === 'SYNCED') log.info(fields, 'clock synchronised');
        else if (e.to === 'DEGRADED') log.warn(fields, 'clock degraded');
        else log.error(fields, 'clock not synchronised: time-stamping refused');
      } else {
        log.warn({ input: e.input, stepSeconds: e.stepSeconds, detail: e.detail }, 'clock step');
      }
      deliver(e);
    },
  });

  let gps: GpsdClient | undefined;
  let gpsUp: boolean | undefined;
  if (cfg.gpsd) {
    gps = new GpsdClient({
      host: cfg.gpsd.host,
      port: cfg.gpsd.port,
      backoff: deps.gpsdBackoff,
      onMessage: (m, atWall, atMono) => monitor.gpsMessage(m, atWall, atMono),
      onConnection: (up, error) => {
        // Once per outage, not once per reconnect attempt.
        if (up) log.info({ gpsd: gps!.endpoint }, 'gpsd connected');
        else if (gpsUp !== false) log.warn({ gpsd: gps!.endpoint, error }, 'gpsd not reachable; reconnecting');
        gpsUp = up;
        monitor.gpsConnection(up, error);
      },
      onProtocolError: (message) => log.debug({ gpsd: gps!.endpoint, message }, 'gpsd line ignored'),
    });
  }

  let chrony: ChronyReader | undefined;
  if (cfg.chrony) {
    let failing = false;
    chrony = new ChronyReader({
      host: cfg.chrony.host,
      port: cfg.chrony.port,
      pollMs: cfg.chrony.pollMs,
      chronyc: cfg.chrony.chronyc,
      onReading: (r) => {
        if (failing) log.info({ chrony: chrony!.endpoint }, 'chronyd answers again');
        failing = false;
        monitor.chronyReading(r);
      },
      onError: (message, atMono) => {
        // Once per outage, not once per poll.
        if (!failing) log.warn({ chrony: chrony!.endpoint, error: message }, 'chronyd does not answer');
        failing = true;
        monitor.chronyError(message, atMono);
      },
    });
  }

  monitor.start();
  gps?.start();
  chrony?.start();

  const source: OpenTimeSource = {
    now: () => monitor.now(),
    status: () => monitor.status(),
    async close() {
      monitor.stop();
      await Promise.all([gps?.close(), chrony?.close()]);
    },
  };

  const wait = deps.waitForSyncMs ?? 0;
  if (wait > 0) {
    const until = performance.now() + wait;
    while (performance.now() < until && monitor.evaluate().state === 'UNSYNCED') {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const s = monitor.status();
  log.info({ timesource: s.source, state: s.state, reasons: s.reasons, bounds: s.bounds }, 'time source opened');
  return source;
}
