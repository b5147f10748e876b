// Digital envelopes over HTTP (docs/envelopes.md), mounted under /api/v1 behind app
// authentication. Thin: check the JSON shape, call signing/envelope.ts, shape the answer.
//
//   POST /envelopes/seal  {content: base64, recipientCertificate: PEM | base64 DER}
//                       | {content, recipientKey: held key id or label (its certificate)}
//                         → {envelope: base64 DER, form, contentEncryption, keyEncryption}
//   POST /envelopes/open  {envelope: base64 DER | PEM, key: held key id or label, accessCode?}
//                         → {content: base64, form, contentEncryption, keyEncryption}
//
// Sealing needs only a certificate (anyone may encrypt to a held key); opening needs the key
// granted to the calling app, with usage 'encrypt' (HeldKeys.forUse), and the custody's Decrypter.
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { fromPem } from '../crypto/der.js';
import type { Decrypter } from '../crypto/interfaces.js';
import { Codes } from '../errors.js';
import { openEnvelope, sealEnvelope } from '../signing/envelope.js';
import type { HeldKeys } from '../signing/types.js';
import { jsonRoute } from './json-body.js';
import { httpError, internalError } from './problem.js';
import type { HttpState } from './state.js';
import { decodeBase64 } from './base64-input.js';

type Ctx = ParameterizedContext<HttpState>;

export interface EnvelopeRouteDeps {
  heldKeys: Pick<HeldKeys, 'forUse' | 'get'>;
  /** The custody's Decrypter; undefined when the custody has none (open answers 501). */
  decrypter: Decrypter | undefined;
  /** DER of a certificate our CA issued, by lower-case hex serial (a held key's certificate). */
  certificateBySerial(serial: string): Promise<Buffer | undefined>;
  /** Largest content (the API body limit). */
  maxContentBytes: number;
}

function bad(field: string, zh: string, en: string): never {
  throw httpError(Codes.BAD_REQUEST, 400, zh, en, { detail: { field } });
}

function body(ctx: Ctx): Record<string, unknown> {
  const b = ctx.request.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw httpError(Codes.BAD_REQUEST, 400, '请求体必须是 JSON 对象', 'the request body must be a JSON object');
  return b as Record<string, unknown>;
}

function appOf(ctx: Ctx): string {
  const app = ctx.state.app;
  if (!app) throw internalError(new Error('envelope routes mounted without app authentication'));
  return app.id;
}

/** Strict base64 (RFC 4648 §4; whitespace allowed between groups). */
function base64(v: unknown, field: string, required = true): Buffer | undefined {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string') bad(field, `${field} 必须是 base64 字符串`, `${field} must be a base64 string`);
  return decodeBase64(v, { whitespace: true }) ?? bad(field, `${field} 不是有效的 base64`, `${field} is not valid base64`);
}

/** PEM (first block) or base64 DER. */
function derOrPem(v: unknown, field: string, label: RegExp): Buffer {
  if (typeof v === 'string' && v.includes('-----BEGIN')) {
    let blocks;
    try {
      blocks = fromPem(v);
    } catch {
      bad(field, `${field} 不是有效的 PEM`, `${field} is not valid PEM`);
    }
    const b = blocks.find((x) => label.test(x.label));
    if (!b) bad(field, `${field} 中没有所需的 PEM 块`, `${field} has no PEM block of the expected type`);
    return b.der;
  }
  const der = base64(v, field) as Buffer;
  if (der.length === 0) bad(field, `${field} 为空`, `${field} is empty`);
  return der;
}

export function envelopeRouter(deps: EnvelopeRouteDeps): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true });

  router.post('/envelopes/seal', jsonRoute(), async (ctx) => {
    appOf(ctx);
    const b = body(ctx);
    const content = base64(b.content, 'content') as Buffer;
    if ((b.recipientCertificate === undefined) === (b.recipientKey === undefined)) {
      bad('recipientCertificate', '须给出 recipientCertificate 或 recipientKey 之一', 'give exactly one of recipientCertificate and recipientKey');
    }
    let certificate: Buffer;
    if (b.recipientKey !== undefined) {
      if (typeof b.recipientKey !== 'string' || b.recipientKey === '') bad('recipientKey', 'recipientKey 必须是托管密钥的 id 或标签', 'recipientKey must be a held key id or label');
      const key = await deps.heldKeys.get(b.recipientKey);
      const der = await deps.certificateBySerial(key.certSerial);
      if (!der) throw httpError('KEY_NOT_FOUND', 404, '托管密钥的证书不存在', `the certificate of held key ${key.label} is missing`, { detail: { key: key.label } });
      certificate = der;
    } else {
      certificate = derOrPem(b.recipientCertificate, 'recipientCertificate', /^(X509 |TRUSTED )?CERTIFICATE$/);
    }
    const r = await sealEnvelope({ recipientCertificate: certificate, content, maxContentBytes: deps.maxContentBytes });
    ctx.body = { envelope: r.envelope.toString('base64'), form: r.form, contentEncryption: r.contentEncryption, keyEncryption: r.keyEncryption };
  });

  router.post('/envelopes/open', jsonRoute(), async (ctx) => {
    const appId = appOf(ctx);
    const b = body(ctx);
    const envelope = derOrPem(b.envelope, 'envelope', /^(CMS|PKCS7)$/);
    if (typeof b.key !== 'string' || b.key === '') bad('key', 'key 必须是托管密钥的 id 或标签', 'key must be a held key id or label');
    if (b.accessCode !== undefined && typeof b.accessCode !== 'string') bad('accessCode', 'accessCode 必须是字符串', 'accessCode must be a string');
    const use = await deps.heldKeys.forUse(b.key, appId, { ...(b.accessCode !== undefined ? { accessCode: b.accessCode } : {}), usage: 'encrypt' });
    if (!deps.decrypter) throw httpError(Codes.HSM_MECHANISM_UNSUPPORTED, 501, '密钥保管不支持解密', 'the key custody cannot decrypt');
    const r = await openEnvelope({ envelope, keyUri: use.key.keyUri, certificate: use.certificate, decrypter: deps.decrypter, maxContentBytes: deps.maxContentBytes });
    ctx.body = { content: r.content.toString('base64'), form: r.form, contentEncryption: r.contentEncryption, keyEncryption: r.keyEncryption };
  });

  return router;
}
