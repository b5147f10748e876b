// Time-stamping over HTTP (RFC 3161 §3.4).
//
// Public (no app authentication; optional network allow-list tsa.allow), both listeners:
//   POST /tsa          application/timestamp-query → application/timestamp-reply, default identity
//   POST /tsa/sm2      the SM2 TSA (GM/T 0033 profile)
//   POST /tsa/ecdsa    the ECDSA P-256 TSA (HSM key)
// Authenticated (under /api/v1):
//   GET  /tsa/tokens/:serial   the stored record of an issued token
//   GET  /time/status          the clock's status()
//
// The public paths are served by a plain node:http handler (http/tsa-handler.ts), not koa:
// every failure there is a TimeStampResp `rejection`, never problem+json.
import Router from '@koa/router';
import { ipToBytes, parseCidr } from '../config/config.js';
import { Codes } from '../errors.js';
import type { TsaTokenRepository } from '../tsa/types.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';

export const TSQ_TYPE = 'application/timestamp-query';
export const TSR_TYPE = 'application/timestamp-reply';
/** The caller's address is not in tsa.allow. */
export const TSA_NOT_ALLOWED = 'TSA_NOT_ALLOWED';

/** The paths the TSA handler answers (main.ts routes them to it on both listeners). */
export function isTsaPublicPath(url: string | undefined): boolean {
  // path === '/tsa' or under '/tsa/', query ignored; without splitting: this runs per request.
  if (!url?.startsWith('/tsa')) return false;
  const next = url.charCodeAt(4);
  return Number.isNaN(next) || next === 0x2f /* / */ || next === 0x3f /* ? */;
}

/** An allow-list test over parsed CIDRs; an empty list allows everyone. */
export function addressFilter(cidrs: string[]): (address: string | undefined) => boolean {
  const nets = cidrs.map((c) => parseCidr(c)!).filter(Boolean);
  if (nets.length === 0) return () => true;
  return (address) => {
    const ip = address ? ipToBytes(address) : undefined;
    if (!ip) return false;
    return nets.some((n) => {
      if (n.bytes.length !== ip.length) return false;
      const full = Math.floor(n.prefix / 8);
      if (!ip.subarray(0, full).equals(n.bytes.subarray(0, full))) return false;
      const rest = n.prefix % 8;
      if (rest === 0) return true;
      const mask = (0xff << (8 - rest)) & 0xff;
      return (ip[full] & mask) === (n.bytes[full] & mask);
    });
  };
}

/** Authenticated routes under /api/v1: token records and the clock status. */
export function tsaApiRouter(deps: { tokens: Pick<TsaTokenRepository, 'get'>; clockStatus: () => unknown }): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true });
  router.get('/tsa/tokens/:serial', async (ctx) => {
    const serial = ctx.params.serial.toLowerCase().replace(/^0x/, '').replace(/^(00)+(?=.)/, '');
    const rec = await deps.tokens.get(serial);
    if (!rec) throw httpError(Codes.NOT_FOUND, 404, '没有这个时间戳', `no time-stamp token with serial ${serial.slice(0, 80)}`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = rec;
  });
  router.get('/time/status', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = deps.clockStatus();
  });
  return router;
}
