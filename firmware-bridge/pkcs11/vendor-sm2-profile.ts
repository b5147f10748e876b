// SM2 inside an HSM: PKCS#11 defines no SM2 mechanisms, so every vendor numbers its own in the
// CKM_VENDOR_DEFINED range (and a key type in CKK_VENDOR_DEFINED). The numbers come from config
// as a profile (docs/hsm-vendor-profiles.md); nothing here guesses them.
import type { SignOptions } from '../../appliance/src/crypto/interfaces.js';
import { ecdsaDerToRaw, ecdsaRawToDer } from '../../appliance/src/asn1/ecdsa-signature.js';
import { YiqianError, Codes } from '../../appliance/src/errors.js';
import { SM2_EC_PARAMS } from './public-key-info.js';
import { mechanismUnsupported } from './pkcs11-errors.js';
import type { HsmSignStep } from './sign-mechanisms.js';

export interface VendorSm2Profile {
  /** Shown in the key inventory, e.g. "vendor-x SM2". */
  name: string;
  /** C_GenerateKeyPair mechanism, e.g. 0x80000A01 (vendor-specific). */
  keyGenMechanism: number;
  /** C_Sign mechanism. */
  signMechanism: number;
  /** CKA_KEY_TYPE of the vendor's SM2 keys. */
  keyType: number;
  /** CKA_EC_PARAMS: DER OID of the curve; default sm2p256v1 06082a811ccf5501822d. */
  ecParams?: Buffer;
  /**
   * What C_Sign takes: 'message' — the message, the token computes Z_A (default ID) and SM3;
   * 'digest-e' — e = SM3(Z_A ‖ M), computed on the host.
   */
  signInput: 'message' | 'digest-e';
  /** How C_Sign returns the signature: 'raw' r‖s (64 bytes, the common case; default) or 'der'. */
  signatureFormat?: 'raw' | 'der';
}

/** GB/T 35276 §5.4 / GM/T 0009 default distinguishing ID. */
export const SM2_DEFAULT_ID = Buffer.from('1234567812345678', 'ascii');

function configInvalid(en: string, zh: string): never {
  throw new YiqianError(Codes.CONFIG_INVALID, 500, { zh: `SM2 厂商配置无效：${zh}`, en: `invalid vendor SM2 profile: ${en}` });
}

/** Checks a profile from config; returns it with defaults filled in. */
export function checkSm2Profile(p: VendorSm2Profile): Required<VendorSm2Profile> {
  if (!p || typeof p.name !== 'string' || p.name.trim() === '') configInvalid('name is required', '缺少 name');
  for (const k of ['keyGenMechanism', 'signMechanism', 'keyType'] as const) {
    const v = p[k];
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) configInvalid(`${k} must be a 32-bit unsigned number`, `${k} 必须是32位无符号数`);
  }
  if (p.signInput !== 'message' && p.signInput !== 'digest-e') configInvalid('signInput must be "message" or "digest-e"', 'signInput 必须为 "message" 或 "digest-e"');
  const fmt = p.signatureFormat ?? 'raw';
  if (fmt !== 'raw' && fmt !== 'der') configInvalid('signatureFormat must be "raw" or "der"', 'signatureFormat 必须为 "raw" 或 "der"');
  const ecParams = p.ecParams ?? SM2_EC_PARAMS;
  if (!Buffer.isBuffer(ecParams) || ecParams[0] !== 0x06 || ecParams[1] !== ecParams.length - 2) configInvalid('ecParams must be a DER OBJECT IDENTIFIER', 'ecParams 必须是 DER 编码的对象标识符');
  return { ...p, ecParams, signatureFormat: fmt };
}

export function hex32(n: number): string {
  return '0x' + n.toString(16).toUpperCase().padStart(8, '0');
}

/** The key inventory's mechanism text for a profile key. */
export function profileMechanismText(p: VendorSm2Profile): string {
  return `${p.name} (vendor SM2 sign ${hex32(p.signMechanism)}, input ${p.signInput})`;
}

/**
 * C_Sign input for a profile. `digestE` computes e = SM3(Z_A ‖ M) for the key and ID (only
 * called in 'digest-e' mode).
 */
export async function sm2ProfileSignStep(
  p: Required<VendorSm2Profile>,
  data: Buffer,
  opts: SignOptions | undefined,
  digestE: (message: Buffer, id: Buffer) => Promise<Buffer>,
): Promise<HsmSignStep> {
  if (opts?.hash !== undefined && opts.hash !== 'sm3') {
    throw new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, { zh: `SM2 只能与 SM3 一起使用`, en: `SM2 signs with SM3 only, not ${opts.hash}` });
  }
  if (opts?.rsaPadding === 'pss') throw new YiqianError(Codes.BAD_REQUEST, 400, { zh: 'SM2 不适用 RSA 填充选项', en: 'rsaPadding does not apply to SM2' });
  const id = opts?.sm2Id ?? SM2_DEFAULT_ID;
  let input: Buffer;
  if (p.signInput === 'message') {
    if (opts?.prehashed) {
      throw mechanismUnsupported(`vendor profile "${p.name}" signs messages, not precomputed digests`, `厂商配置 "${p.name}" 只能对消息签名，不能对预计算摘要签名`);
    }
    if (!id.equals(SM2_DEFAULT_ID)) {
      throw mechanismUnsupported(`vendor profile "${p.name}" computes Z_A with the default ID only`, `厂商配置 "${p.name}" 只支持默认用户标识`);
    }
    input = data;
  } else if (opts?.prehashed) {
    if (data.length !== 32) throw new YiqianError(Codes.BAD_REQUEST, 400, { zh: 'SM2 预计算摘要 e 必须为32字节', en: `SM2 prehashed e must be 32 bytes, got ${data.length}` });
    input = data;
  } else {
    input = await digestE(data, id);
  }
  return {
    mechanism: { mechanism: p.signMechanism },
    input,
    outLen: p.signatureFormat === 'der' ? 80 : 64,
    finish: (out) => (p.signatureFormat === 'der' ? canonicalDer(out) : rawSm2ToDer(out)),
  };
}

/** Re-encodes the token's DER (also checks it); a malformed one is the HSM's fault, not the client's. */
function canonicalDer(der: Buffer): Buffer {
  try {
    return ecdsaRawToDer(ecdsaDerToRaw(der, 32));
  } catch (e) {
    throw new YiqianError(Codes.HSM_ERROR, 500, { zh: '厂商 SM2 机制返回的 DER 签名无效', en: 'the vendor SM2 mechanism returned a malformed DER signature' }, undefined, { cause: e });
  }
}

function rawSm2ToDer(raw: Buffer): Buffer {
  if (raw.length !== 64) throw new YiqianError(Codes.HSM_ERROR, 500, { zh: 'SM2 签名长度错误', en: `vendor SM2 mechanism returned ${raw.length} bytes, expected 64 (r‖s)` });
  return ecdsaRawToDer(raw);
}
