// One PKCS#11 module, one token, a pool of logged-in sessions handed out per operation, and
// recovery when the session, the login or the device goes away.
//
// - C_Initialize with CKF_OS_LOCKING_OK: pkcs11js runs *Async calls on libuv threads, and a
//   module initialised without OS locking crashes or hangs under them.
// - The token is found by label (slot ids are not stable: SoftHSM2 makes them random).
// - Login state belongs to the token, not the session: every new session calls C_Login and
//   accepts CKR_USER_ALREADY_LOGGED_IN.
// - Recovery (pkcs11-errors.ts): a session error opens a new session and logs in again; a
//   device error finalises and re-initialises the module, finds the token and logs in again.
//   Either way the operation is retried once; if it fails again it is HSM_UNAVAILABLE (503).
import { log } from '../../appliance/src/log.js';
import { YiqianError, Codes, isYiqianError } from '../../appliance/src/errors.js';
import { ck, ckrOf, ckString, isLoggedIn, loadPkcs11Module, pkcs11Error, type Pkcs11Module } from './pkcs11-module.js';
import { recoveryFor, sessionHandleGone, toYiqianError, hsmUnavailable, isCkr } from './pkcs11-errors.js';

const plog = log.child({ component: 'pkcs11' });

export interface HsmOperationEvent {
  /** e.g. "sign", "generate", "wrap", "unwrap", "find", "destroy", "health", "reconnect". */
  op: string;
  ok: boolean;
  seconds: number;
}

export type HsmObserver = (e: HsmOperationEvent) => void;

export interface SessionPoolOptions {
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  pin: string;
  /** Sessions kept open (default 4). Each operation holds one session for its duration. */
  poolSize?: number;
  /** Called once for every HSM operation (including its recovery), e.g. to feed Prometheus. */
  observer?: HsmObserver;
  /** Injection point: load the module some other way (a test double). Default: pkcs11js. */
  loadModule?: (path: string) => Pkcs11Module;
  /** After a failed re-initialisation, fail fast for this long before trying again (default 1000 ms). */
  reconnectIntervalMs?: number;
  /** How long a re-initialisation waits for in-flight operations to finish (default 5000 ms). */
  drainTimeoutMs?: number;
  /**
   * Called after the module was finalised and initialised again: every session handle in the
   * process is void then (e.g. the TLS engine's, which shares the library) — see tls-engine.ts.
   */
  onReinitialize?: () => void;
}

export interface PooledSession {
  readonly handle: Buffer;
  /** Pool generation the session belongs to; a session from an older epoch is never reused. */
  readonly epoch: number;
  /** Module initialisation the session belongs to. */
  readonly init: number;
}

type State = 'ready' | 'reconnecting' | 'down';

export class Pkcs11SessionPool {
  readonly tokenLabel: string;
  private readonly pin: string;
  private readonly poolSize: number;
  private readonly reconnectIntervalMs: number;
  private readonly drainTimeoutMs: number;
  private slotId!: Buffer;
  private state: State = 'ready';
  private downSince = 0;
  private lastReason = '';
  private reinitPromise: Promise<void> | undefined;
  private closed = false;
  private epochNo = 0;
  private initNo = 0;
  private idle: PooledSession[] = [];
  /** Sessions of the current epoch, idle or in use. */
  private open = 0;
  private inUse = 0;
  private waiters: Array<() => void> = [];
  private drainWaiters: Array<() => void> = [];
  private moduleText = '';
  /** False when another user of the library in this process (the TLS engine) had initialised it. */
  private initializedHere = false;

  private constructor(
    readonly p11: Pkcs11Module,
    private readonly opts: SessionPoolOptions,
  ) {
    this.tokenLabel = opts.tokenLabel;
    this.pin = opts.pin;
    this.poolSize = Math.max(1, opts.poolSize ?? 4);
    this.reconnectIntervalMs = opts.reconnectIntervalMs ?? 1000;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 5000;
  }

  /**
   * Loads the module, initialises it, finds the token, logs in. Errors: HSM_UNAVAILABLE (the
   * module cannot be loaded or initialised), HSM_TOKEN_NOT_FOUND, HSM_PIN_INCORRECT.
   */
  static async open(opts: SessionPoolOptions): Promise<Pkcs11SessionPool> {
    let p11: Pkcs11Module;
    try {
      p11 = (opts.loadModule ?? loadPkcs11Module)(opts.module);
    } catch (e) {
      throw hsmUnavailable(opts.tokenLabel, `cannot load PKCS#11 module ${opts.module}: ${e instanceof Error ? e.message : String(e)}`, e);
    }
    const pool = new Pkcs11SessionPool(p11, opts);
    try {
      pool.initialize(true);
      const s = pool.openSession();
      pool.open = 1;
      pool.idle.push(s);
    } catch (e) {
      if (pool.initializedHere) {
        try {
          p11.C_Finalize();
        } catch {
          /* not initialised */
        }
      }
      try {
        p11.close();
      } catch {
        /* already unloaded */
      }
      throw toYiqianError(e, { token: opts.tokenLabel, op: 'open' });
    }
    plog.info({ token: opts.tokenLabel, module: pool.moduleText, poolSize: pool.poolSize }, 'PKCS#11 token opened');
    return pool;
  }

  /** Slot currently holding the token (changes across re-initialisation). */
  get slot(): Buffer {
    return this.slotId;
  }

  /** Changes whenever sessions were replaced; object handles found in an older epoch must be looked up again. */
  get epoch(): number {
    return this.epochNo;
  }

  /** "SoftHSM / Implementation of PKCS11 2.6 / token model SoftHSM v2". */
  get moduleDescription(): string {
    return this.moduleText;
  }

  /**
   * Runs one HSM operation on a pooled session, with recovery and one retry. `fn` must leave
   * the session without an active operation when it returns or throws a YiqianError.
   */
  async run<T>(op: string, fn: (p11: Pkcs11Module, session: PooledSession) => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    let ok = false;
    try {
      for (let attempt = 0; ; attempt++) {
        const epochAtStart = this.epochNo;
        let s: PooledSession | undefined;
        try {
          s = await this.acquire();
          const result = await fn(this.p11, s);
          this.release(s);
          ok = true;
          return result;
        } catch (e) {
          if (s) this.release(s, e);
          const recovery = recoveryFor(e);
          if (recovery === 'none') throw toYiqianError(e, { token: this.tokenLabel, op });
          const rv = ckrOf(e)?.name ?? 'error';
          if (attempt >= 1) throw hsmUnavailable(this.tokenLabel, `${op} failed again after ${recovery} recovery (${rv})`, e);
          plog.warn({ token: this.tokenLabel, op, ckr: rv, recovery }, 'PKCS#11 operation failed; recovering and retrying once');
          const failedEpoch = s?.epoch ?? epochAtStart;
          if (recovery === 'session') {
            if (failedEpoch === this.epochNo) this.bumpEpoch();
          } else if (failedEpoch === this.epochNo && this.state === 'ready') {
            await this.reinitialize(rv);
          }
        }
      }
    } finally {
      this.observe(op, ok, t0);
    }
  }

  /**
   * For when an object that should exist is not found: if the token itself no longer answers,
   * raise a device error so that run() re-initialises (and reports HSM_UNAVAILABLE if the token
   * stays gone) instead of reporting a missing key.
   */
  probeToken(): void {
    try {
      this.p11.C_GetTokenInfo(this.slotId);
    } catch (e) {
      plog.warn({ token: this.tokenLabel, ckr: ckrOf(e)?.name }, 'token does not answer C_GetTokenInfo');
      throw pkcs11Error(ck.CKR_TOKEN_NOT_PRESENT, 'C_GetTokenInfo');
    }
  }

  /** Token present and logged in; never throws. */
  async health(): Promise<{ ok: boolean; reason?: string; model?: string }> {
    try {
      const model = await this.run('health', async (p11, s) => {
        this.probeToken();
        if (!isLoggedIn(p11, s.handle)) throw pkcs11Error(ck.CKR_USER_NOT_LOGGED_IN, 'C_GetSessionInfo');
        return ckString(p11.C_GetTokenInfo(this.slotId).model);
      });
      return { ok: true, model };
    } catch (e) {
      return { ok: false, reason: e instanceof YiqianError ? e.text.en : String(e) };
    }
  }

  /** Closes the sessions and finalises the module. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain();
    for (const s of this.idle) this.closeSession(s);
    this.idle = [];
    this.open = 0;
    // Leave the library initialised if someone else in the process (the TLS engine) did it first.
    if (this.initializedHere) {
      try {
        this.p11.C_Finalize();
      } catch (e) {
        plog.debug({ ckr: ckrOf(e)?.name }, 'C_Finalize at close');
      }
    }
    try {
      this.p11.close();
    } catch {
      /* already unloaded */
    }
    for (const w of this.waiters.splice(0)) w();
  }

  // ---- internals ----

  /** C_Initialize, find the token's slot by label, read the module description. */
  private initialize(atStart: boolean): void {
    try {
      this.p11.C_Initialize({ flags: ck.CKF_OS_LOCKING_OK });
      this.initializedHere = true;
    } catch (e) {
      // Another user of the same library in this process (the TLS engine) initialised it first.
      if (!isCkr(e, ck.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
        throw hsmUnavailable(this.tokenLabel, `C_Initialize failed (${ckrOf(e)?.name ?? String(e)})`, e);
      }
      this.initializedHere = false;
    }
    this.initNo++;
    const found: string[] = [];
    let slot: Buffer | undefined;
    let model = '';
    for (const s of this.p11.C_GetSlotList(true)) {
      let label: string;
      try {
        const ti = this.p11.C_GetTokenInfo(s);
        label = ckString(ti.label);
        if (label === this.tokenLabel && !slot) {
          slot = s;
          model = ckString(ti.model);
        }
      } catch {
        continue;
      }
      found.push(label);
    }
    if (!slot) {
      if (atStart) {
        throw new YiqianError(
          Codes.HSM_TOKEN_NOT_FOUND,
          500,
          {
            zh: `PKCS#11 模块中没有标签为 "${this.tokenLabel}" 的令牌（现有：${found.filter(Boolean).join('、') || '无'}）`,
            en: `no token labelled "${this.tokenLabel}" in the PKCS#11 module (present: ${found.filter(Boolean).map((l) => JSON.stringify(l)).join(', ') || 'none'})`,
          },
          { token: this.tokenLabel, present: found.filter(Boolean) },
        );
      }
      throw hsmUnavailable(this.tokenLabel, 'the token is no longer present');
    }
    this.slotId = slot;
    const info = this.p11.C_GetInfo();
    this.moduleText = `${ckString(info.manufacturerID)} / ${ckString(info.libraryDescription)} ${info.libraryVersion.major}.${info.libraryVersion.minor} / token model ${model}`;
  }

  private openSession(): PooledSession {
    const handle = this.p11.C_OpenSession(this.slotId, ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION);
    try {
      this.p11.C_Login(handle, ck.CKU_USER, this.pin);
    } catch (e) {
      if (!isCkr(e, ck.CKR_USER_ALREADY_LOGGED_IN)) {
        try {
          this.p11.C_CloseSession(handle);
        } catch {
          /* best effort */
        }
        throw e;
      }
    }
    return { handle, epoch: this.epochNo, init: this.initNo };
  }

  private closeSession(s: PooledSession, err?: unknown): void {
    // After a re-initialisation, or when the module said the handle is gone, the number may
    // already belong to someone else's new session: never close it then.
    if (s.init !== this.initNo || sessionHandleGone(err)) return;
    try {
      this.p11.C_CloseSession(s.handle);
    } catch {
      /* already gone */
    }
  }

  private async acquire(): Promise<PooledSession> {
    for (;;) {
      if (this.closed) throw hsmUnavailable(this.tokenLabel, 'the key custody is closed');
      if (this.reinitPromise) {
        await this.reinitPromise.catch(() => undefined);
        continue;
      }
      if (this.state === 'down') {
        if (Date.now() - this.downSince < this.reconnectIntervalMs) throw hsmUnavailable(this.tokenLabel, this.lastReason);
        await this.reinitialize('retry after failure');
        continue;
      }
      const s = this.idle.pop();
      if (s) {
        this.inUse++;
        return s;
      }
      if (this.open < this.poolSize) {
        this.open++;
        try {
          const fresh = this.openSession();
          this.inUse++;
          return fresh;
        } catch (e) {
          this.open--;
          this.wakeOne();
          throw e;
        }
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private release(s: PooledSession, err?: unknown): void {
    this.inUse--;
    // A YiqianError comes from our own code, which leaves no operation active: keep the session.
    const broken = err !== undefined && !isYiqianError(err);
    if (s.epoch === this.epochNo && !broken && !this.closed) {
      this.idle.push(s);
    } else {
      if (s.epoch === this.epochNo) this.open--;
      this.closeSession(s, err);
    }
    this.wakeOne();
    if (this.inUse === 0) for (const d of this.drainWaiters.splice(0)) d();
  }

  private bumpEpoch(): void {
    this.epochNo++;
    for (const s of this.idle) this.closeSession(s);
    this.idle = [];
    this.open = 0;
    for (const w of this.waiters.splice(0)) w();
  }

  private wakeOne(): void {
    this.waiters.shift()?.();
  }

  private async drain(): Promise<void> {
    if (this.inUse === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        plog.warn({ token: this.tokenLabel, inUse: this.inUse }, 'in-flight PKCS#11 operations did not finish in time; continuing');
        resolve();
      }, this.drainTimeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Finalise, initialise, find the token, log in. Shared by concurrent callers; throws HSM_UNAVAILABLE on failure. */
  private reinitialize(reason: string): Promise<void> {
    if (this.reinitPromise) return this.reinitPromise;
    const t0 = process.hrtime.bigint();
    this.state = 'reconnecting';
    this.bumpEpoch();
    const p = (async () => {
      let ok = false;
      let finalized = false;
      try {
        await this.drain();
        try {
          this.p11.C_Finalize();
        } catch {
          /* not initialised (a previous attempt failed) */
        }
        finalized = true;
        this.initialize(false);
        const s = this.openSession();
        this.idle.push(s);
        this.open = 1;
        this.state = 'ready';
        ok = true;
        plog.warn({ token: this.tokenLabel, reason }, 'PKCS#11 module re-initialised; token found and logged in again');
      } catch (e) {
        this.state = 'down';
        this.downSince = Date.now();
        const err = toYiqianError(e, { token: this.tokenLabel, op: 'reconnect' });
        this.lastReason = err.code === Codes.HSM_UNAVAILABLE ? String(err.detail?.reason ?? err.text.en) : err.text.en;
        plog.error({ token: this.tokenLabel, reason: this.lastReason }, 'PKCS#11 re-initialisation failed');
        throw err.code === Codes.HSM_PIN_INCORRECT ? err : hsmUnavailable(this.tokenLabel, this.lastReason, e);
      } finally {
        this.reinitPromise = undefined;
        this.observe('reconnect', ok, t0);
        if (finalized) {
          try {
            this.opts.onReinitialize?.();
          } catch (e) {
            plog.warn({ err: e }, 'onReinitialize hook failed');
          }
        }
        for (const w of this.waiters.splice(0)) w();
      }
    })();
    this.reinitPromise = p;
    return p;
  }

  private observe(op: string, ok: boolean, t0: bigint): void {
    if (!this.opts.observer) return;
    try {
      this.opts.observer({ op, ok, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    } catch (e) {
      plog.warn({ err: e }, 'HSM observer threw');
    }
  }
}
