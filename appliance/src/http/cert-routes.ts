// Certificate issuance over HTTP (docs/pki.md), mounted under /api/v1 behind app
// authentication. Thin: check the JSON shape, call the certificate service, shape the answer.
//
//   POST /certs                    issue from a PKCS#10 request                     201
//   POST /certs/keygen             issue with a key generated here (encrypted PKCS#8) 201
//   GET  /certs?serial&subject&employeeId&departmentId&status&profile&expiresBefore&limit&cursor
//   GET  /certs/expiring?days=30   good, not renewed, notAfter within N days
//   GET  /certs/:serial
//   POST /certs/:serial/renew      {} same key | {csr} | {keygen: {algorithm, password}}  201
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { Codes } from '../errors.js';
import type { CertificateService, IssueRequest, IssuedCertificate } from '../pki/certificate-service.js';
import type { ExtensionInput } from '../pki/request-fields.js';
import type { CertificateRecord, CertificateStatus } from '../pki/types.js';
import { toPem } from '../crypto/der.js';
import { jsonRoute } from './json-body.js';
import { httpError } from './problem.js';
import { callingApp } from './app-auth.js';
import { jsonObject } from './json-body.js';
import type { HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

export interface CertRouteDeps {
  certificates: CertificateService;
}

const actorOf = (ctx: Ctx): string => `app:${callingApp(ctx).id}`;

function bad(zh: string, en: string, detail?: Record<string, unknown>): never {
  throw httpError(Codes.BAD_REQUEST, 400, zh, en, detail ? { detail } : {});
}

const body = jsonObject;

const STRING_FIELDS = ['commonName', 'organisation', 'ou', 'department', 'employeeId', 'departmentId', 'titleLevel', 'email'] as const;

/** The issue-request fields of a body, with JSON types checked (contents are the service's job). */
function issueFields(b: Record<string, unknown>): IssueRequest {
  if (typeof b.profile !== 'string') bad('缺少 profile（证书配置名）', 'profile (the certificate profile name) is required', { field: 'profile' });
  for (const f of STRING_FIELDS) if (b[f] !== undefined && typeof b[f] !== 'string') bad(`${f} 必须是字符串`, `${f} must be a string`, { field: f });
  for (const f of ['dnsNames', 'ipAddresses'] as const) {
    if (b[f] !== undefined && !(Array.isArray(b[f]) && (b[f] as unknown[]).every((x) => typeof x === 'string'))) bad(`${f} 必须是字符串数组`, `${f} must be an array of strings`, { field: f });
  }
  if (b.ou !== undefined && b.department !== undefined && b.ou !== b.department) bad('ou 与 department 是同一字段，只能给出一个', 'ou and department are the same field: give one');
  if (b.validityDays !== undefined && typeof b.validityDays !== 'number') bad('validityDays 必须是数字', 'validityDays must be a number', { field: 'validityDays' });
  if (b.hierarchy !== undefined && typeof b.hierarchy !== 'string') bad('hierarchy 必须是字符串', 'hierarchy must be a string', { field: 'hierarchy' });
  if (b.extensions !== undefined && !Array.isArray(b.extensions)) bad('extensions 必须是数组', 'extensions must be an array', { field: 'extensions' });
  const req: IssueRequest = {
    profile: b.profile,
    ...(b.hierarchy !== undefined ? { hierarchy: b.hierarchy as IssueRequest['hierarchy'] } : {}),
    ...(b.validityDays !== undefined ? { validityDays: b.validityDays as number } : {}),
    ...(b.extensions !== undefined ? { extensions: b.extensions as ExtensionInput[] } : {}),
  };
  for (const f of ['commonName', 'organisation', 'employeeId', 'departmentId', 'titleLevel', 'email'] as const) if (b[f] !== undefined) req[f] = b[f] as string;
  if (b.ou !== undefined || b.department !== undefined) req.ou = (b.ou ?? b.department) as string;
  if (b.dnsNames !== undefined) req.dnsNames = b.dnsNames as string[];
  if (b.ipAddresses !== undefined) req.ipAddresses = b.ipAddresses as string[];
  return req;
}

function requiredString(b: Record<string, unknown>, field: string): string {
  if (typeof b[field] !== 'string' || (b[field] as string).length === 0) bad(`缺少 ${field}`, `${field} is required (a string)`, { field });
  return b[field] as string;
}

/** A certificate record as clients see it: everything but the base64 DER, which is given as PEM. */
export function certificateView(r: CertificateRecord): Record<string, unknown> {
  const { certificate, publicKeyInfo, keyRef: _keyRef, ...rest } = r;
  return { ...rest, certificate: toPem('CERTIFICATE', Buffer.from(certificate, 'base64')), publicKey: toPem('PUBLIC KEY', Buffer.from(publicKeyInfo, 'base64')) };
}

function issuedView(i: IssuedCertificate): Record<string, unknown> {
  return {
    serial: i.record.serial,
    certificate: toPem('CERTIFICATE', Buffer.from(i.record.certificate, 'base64')),
    chain: i.chainPem,
    ...(i.encryptedPrivateKeyPem !== undefined ? { encryptedPrivateKey: i.encryptedPrivateKeyPem } : {}),
    record: certificateView(i.record),
  };
}

function queryString(ctx: Ctx, name: string): string | undefined {
  const v = ctx.query[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) bad(`查询参数 ${name} 只能出现一次`, `query parameter ${name} may appear only once`);
  return v;
}

function queryInt(ctx: Ctx, name: string): number | undefined {
  const v = queryString(ctx, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,6}$/.test(v)) bad(`${name} 必须是正整数`, `${name} must be a positive integer`);
  return Number(v);
}

function page(ctx: Ctx): { limit?: number; cursor?: string } {
  const limit = queryInt(ctx, 'limit');
  const cursor = queryString(ctx, 'cursor');
  return { ...(limit !== undefined ? { limit } : {}), ...(cursor !== undefined ? { cursor } : {}) };
}

function listView(p: { items: CertificateRecord[]; next?: string }): Record<string, unknown> {
  return { items: p.items.map(certificateView), ...(p.next !== undefined ? { next: p.next } : {}) };
}

export function certRoutes(deps: CertRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });
  const svc = deps.certificates;

  r.post('/certs', jsonRoute(), async (ctx) => {
    const b = body(ctx);
    const csr = requiredString(b, 'csr');
    const issued = await svc.issueFromCsr({ ...issueFields(b), csr }, actorOf(ctx));
    ctx.status = 201;
    ctx.set('Location', `/api/v1/certs/${issued.record.serial}`);
    ctx.body = issuedView(issued);
  });

  r.post('/certs/keygen', jsonRoute(), async (ctx) => {
    const b = body(ctx);
    const algorithm = requiredString(b, 'algorithm');
    const password = requiredString(b, 'password');
    const issued = await svc.issueWithKeygen({ ...issueFields(b), algorithm: algorithm as never, password }, actorOf(ctx));
    ctx.status = 201;
    ctx.set('Location', `/api/v1/certs/${issued.record.serial}`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = issuedView(issued);
  });

  r.get('/certs', async (ctx) => {
    const q = {
      serial: queryString(ctx, 'serial'),
      subject: queryString(ctx, 'subject'),
      employeeId: queryString(ctx, 'employeeId'),
      departmentId: queryString(ctx, 'departmentId'),
      status: queryString(ctx, 'status') as CertificateStatus | undefined,
      profile: queryString(ctx, 'profile'),
      expiresBefore: queryString(ctx, 'expiresBefore'),
      expiresAfter: queryString(ctx, 'expiresAfter'),
    };
    const clean = Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined));
    ctx.body = listView(await svc.query(clean, page(ctx)));
  });

  r.get('/certs/expiring', async (ctx) => {
    const days = queryInt(ctx, 'days') ?? 30;
    ctx.body = { days, ...listView(await svc.expiring(days, page(ctx))) };
  });

  r.get('/certs/:serial', async (ctx) => {
    const record = await svc.get(ctx.params.serial);
    ctx.body = { ...certificateView(record), chain: await svc.chainPem(record) };
  });

  r.post('/certs/:serial/renew', jsonRoute(), async (ctx) => {
    const b = body(ctx);
    for (const k of Object.keys(b)) if (!['csr', 'keygen', 'validityDays'].includes(k)) bad(`续期请求不接受字段 ${k}`, `renewal takes csr, keygen or validityDays, not ${k}`, { field: k });
    if (b.csr !== undefined && typeof b.csr !== 'string') bad('csr 必须是字符串', 'csr must be a string (PEM or base64 DER)', { field: 'csr' });
    if (b.validityDays !== undefined && typeof b.validityDays !== 'number') bad('validityDays 必须是数字', 'validityDays must be a number', { field: 'validityDays' });
    let keygen: { algorithm: never; password: string } | undefined;
    if (b.keygen !== undefined) {
      if (typeof b.keygen !== 'object' || b.keygen === null || Array.isArray(b.keygen)) bad('keygen 必须是对象 {algorithm, password}', 'keygen must be an object {algorithm, password}', { field: 'keygen' });
      const k = b.keygen as Record<string, unknown>;
      keygen = { algorithm: requiredString(k, 'algorithm') as never, password: requiredString(k, 'password') };
    }
    const issued = await svc.renew(
      ctx.params.serial,
      { ...(b.csr !== undefined ? { csr: b.csr as string } : {}), ...(keygen ? { keygen } : {}), ...(b.validityDays !== undefined ? { validityDays: b.validityDays as number } : {}) },
      actorOf(ctx),
    );
    ctx.status = 201;
    ctx.set('Location', `/api/v1/certs/${issued.record.serial}`);
    if (keygen) ctx.set('Cache-Control', 'no-store');
    ctx.body = issuedView(issued);
  });

  return r;
}
