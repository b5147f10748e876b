// TEST DOUBLE — not an HSM. SoftHSM2 has no SM2, and the PCIe HSMs that do are not on this
// machine, so the vendor-profile path of the custody (hsm-mode SM2 with vendor mechanism numbers)
// is exercised against this: a real pkcs11js PKCS11 object loaded with SoftHSM2 that passes
// every call through, except a made-up vendor's SM2 key generation and signing mechanisms,
// which it implements in software (appliance/src/crypto/sm2.ts) with the SM2 private keys kept
// in memory under fake object handles.
//
// What it checks on the custody's side: that it uses the profile's mechanism and key-type
// numbers, passes CKA_EC_PARAMS = the SM2 curve OID, reads CKA_EC_POINT as a DER OCTET STRING,
// feeds C_Sign the message or e = SM3(Z‖M) as the profile says, and converts raw r‖s to DER.
import pkcs11js from 'pkcs11js';
import type { PKCS11, Mechanism, Template, TemplateResult, KeyPair, ModuleInfo, TokenInfo, SessionInfo, InitializationOptions } from 'pkcs11js';
import { createSm2Signer, generateSm2KeyPair } from '../../appliance/src/crypto/sm2.js';
import { ecdsaDerToRaw } from '../../appliance/src/asn1/ecdsa-signature.js';
import type { Pkcs11Module } from '../../firmware-bridge/pkcs11/pkcs11-module.js';
import type { VendorSm2Profile } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';

const { CKA_CLASS, CKA_KEY_TYPE, CKA_EC_PARAMS, CKA_EC_POINT, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_VALUE, CKA_SIGN } = pkcs11js;

/** A made-up vendor numbering — NOT any real vendor's. */
export const TEST_DOUBLE_MECHANISMS = {
  keyType: 0x80000a00, // CKK_VENDOR_DEFINED | 0xA00
  keyGen: 0x80000a01, // CKM_VENDOR_DEFINED | 0xA01
  sign: 0x80000a02, // CKM_VENDOR_DEFINED | 0xA02
} as const;

const SM2_OID = Buffer.from('06082a811ccf5501822d', 'hex');

export function testDoubleProfile(signInput: VendorSm2Profile['signInput']): VendorSm2Profile {
  return {
    name: `test-double SM2 (${signInput})`,
    keyGenMechanism: TEST_DOUBLE_MECHANISMS.keyGen,
    signMechanism: TEST_DOUBLE_MECHANISMS.sign,
    keyType: TEST_DOUBLE_MECHANISMS.keyType,
    signInput,
  };
}

interface FakeObject {
  attrs: Map<number, Buffer>;
  /** Private keys only. */
  d?: Buffer;
}

function ckError(name: keyof typeof pkcs11js): Error {
  const code = pkcs11js[name] as number;
  return new pkcs11js.Pkcs11Error(`${String(name)}:${code}`, code);
}

/** Attribute value → bytes, the way a token stores it (CK_BBOOL 1 byte, CK_ULONG 8 bytes LE on x86-64). */
function toBytes(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'boolean') return Buffer.from([v ? 1 : 0]);
  if (typeof v === 'number') {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return b;
  }
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  throw new TypeError('unsupported attribute value');
}

export class TestDoubleSm2Pkcs11 implements Pkcs11Module {
  private readonly real: PKCS11;
  private readonly objects = new Map<string, FakeObject>();
  private nextHandle = 0x7fff0000n;
  private readonly searches = new Map<string, Buffer[]>();
  private readonly pendingSign = new Map<string, FakeObject>();
  /** Every C_Sign input the double handled, to let a test see what the custody passed. */
  readonly signInputs: Buffer[] = [];

  constructor(
    modulePath: string,
    private readonly signInput: VendorSm2Profile['signInput'],
  ) {
    this.real = new pkcs11js.PKCS11();
    this.real.load(modulePath);
  }

  private isFake(h: Buffer): FakeObject | undefined {
    return this.objects.get(h.toString('hex'));
  }

  private newHandle(): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(this.nextHandle++);
    return b;
  }

  // ---- vendor SM2, in software ----

  async C_GenerateKeyPairAsync(session: Buffer, mechanism: Mechanism, publicTmpl: Template, privateTmpl: Template): Promise<KeyPair> {
    if (mechanism.mechanism !== TEST_DOUBLE_MECHANISMS.keyGen) return this.real.C_GenerateKeyPairAsync(session, mechanism, publicTmpl, privateTmpl);
    const get = (t: Template, type: number): Buffer | undefined => {
      const a = t.find((x) => x.type === type);
      return a?.value === undefined ? undefined : toBytes(a.value);
    };
    const params = get(publicTmpl, CKA_EC_PARAMS);
    if (!params || !params.equals(SM2_OID)) throw ckError('CKR_DOMAIN_PARAMS_INVALID');
    for (const t of [publicTmpl, privateTmpl]) {
      const kt = get(t, CKA_KEY_TYPE);
      if (kt && !kt.equals(toBytes(TEST_DOUBLE_MECHANISMS.keyType))) throw ckError('CKR_TEMPLATE_INCONSISTENT');
    }
    const { privateKey, publicKey } = generateSm2KeyPair();
    // CKA_EC_POINT: DER OCTET STRING around 04‖X‖Y, as the standard says.
    const ecPoint = Buffer.concat([Buffer.from([0x04, 0x41]), publicKey]);
    const mk = (t: Template, cls: number, extra: Array<[number, Buffer]>): Buffer => {
      const attrs = new Map<number, Buffer>();
      for (const a of t) if (a.value !== undefined) attrs.set(a.type, toBytes(a.value));
      attrs.set(CKA_CLASS, toBytes(cls));
      attrs.set(CKA_KEY_TYPE, toBytes(TEST_DOUBLE_MECHANISMS.keyType));
      for (const [k, v] of extra) attrs.set(k, v);
      const h = this.newHandle();
      this.objects.set(h.toString('hex'), { attrs, d: cls === pkcs11js.CKO_PRIVATE_KEY ? privateKey : undefined });
      return h;
    };
    const pub = mk(publicTmpl, pkcs11js.CKO_PUBLIC_KEY, [[CKA_EC_POINT, ecPoint], [CKA_EC_PARAMS, SM2_OID]]);
    const priv = mk(privateTmpl, pkcs11js.CKO_PRIVATE_KEY, [[CKA_EC_PARAMS, SM2_OID], [CKA_SENSITIVE, toBytes(true)], [CKA_EXTRACTABLE, toBytes(false)]]);
    return { publicKey: pub, privateKey: priv };
  }

  C_SignInit(session: Buffer, mechanism: Mechanism, key: Buffer): void {
    const o = this.isFake(key);
    if (!o) {
      if (mechanism.mechanism === TEST_DOUBLE_MECHANISMS.sign) throw ckError('CKR_KEY_TYPE_INCONSISTENT');
      return this.real.C_SignInit(session, mechanism, key);
    }
    if (mechanism.mechanism !== TEST_DOUBLE_MECHANISMS.sign) throw ckError('CKR_MECHANISM_INVALID');
    if (!o.d || o.attrs.get(CKA_SIGN)?.[0] !== 1) throw ckError('CKR_KEY_FUNCTION_NOT_PERMITTED');
    this.pendingSign.set(session.toString('hex'), o);
  }

  private async fakeSign(session: Buffer, data: Buffer): Promise<Buffer | undefined> {
    const o = this.pendingSign.get(session.toString('hex'));
    if (!o) return undefined;
    this.pendingSign.delete(session.toString('hex'));
    this.signInputs.push(Buffer.from(data));
    const signer = createSm2Signer(o.d as Buffer);
    let der: Buffer;
    if (this.signInput === 'digest-e') {
      if (data.length !== 32) throw ckError('CKR_DATA_LEN_RANGE');
      der = await signer.sign(data, { prehashed: true });
    } else {
      der = await signer.sign(data); // the "token" computes Z_A with the default ID
    }
    return ecdsaDerToRaw(der, 32); // raw r‖s, as vendors return it
  }

  async C_SignAsync(session: Buffer, inData: Buffer, outData: Buffer): Promise<Buffer> {
    const fake = await this.fakeSign(session, inData);
    if (!fake) return this.real.C_SignAsync(session, inData, outData);
    if (outData.length < fake.length) throw ckError('CKR_BUFFER_TOO_SMALL');
    fake.copy(outData);
    return outData.subarray(0, fake.length);
  }

  C_Sign(session: Buffer, inData: Buffer, outData: Buffer): Buffer {
    if (this.pendingSign.has(session.toString('hex'))) throw ckError('CKR_FUNCTION_NOT_SUPPORTED'); // the double signs asynchronously only
    return this.real.C_Sign(session, inData, outData);
  }

  // ---- object calls that must see the fake objects too ----

  C_FindObjectsInit(session: Buffer, template: Template): void {
    this.real.C_FindObjectsInit(session, template);
    const want = template.map((a) => [a.type, a.value === undefined ? undefined : toBytes(a.value)] as const);
    const matches: Buffer[] = [];
    for (const [hex, o] of this.objects) {
      if (want.every(([t, v]) => v === undefined || o.attrs.get(t)?.equals(v))) matches.push(Buffer.from(hex, 'hex'));
    }
    this.searches.set(session.toString('hex'), matches);
  }

  C_FindObjects(session: Buffer, maxObjectCount: number): Buffer[] {
    const fakes = this.searches.get(session.toString('hex')) ?? [];
    const out = fakes.splice(0, maxObjectCount);
    if (out.length < maxObjectCount) out.push(...this.real.C_FindObjects(session, maxObjectCount - out.length));
    return out;
  }

  C_FindObjectsFinal(session: Buffer): void {
    this.searches.delete(session.toString('hex'));
    this.real.C_FindObjectsFinal(session);
  }

  C_GetAttributeValue(session: Buffer, object: Buffer, template: Template): TemplateResult {
    const o = this.isFake(object);
    if (!o) return this.real.C_GetAttributeValue(session, object, template);
    return template.map((a) => {
      if (a.type === CKA_VALUE && o.d) throw ckError('CKR_ATTRIBUTE_SENSITIVE');
      const v = o.attrs.get(a.type);
      if (!v) throw ckError('CKR_ATTRIBUTE_TYPE_INVALID');
      return { type: a.type, value: Buffer.from(v) };
    });
  }

  C_CopyObject(session: Buffer, object: Buffer, template: Template): Buffer {
    const o = this.isFake(object);
    if (!o) return this.real.C_CopyObject(session, object, template);
    const attrs = new Map(o.attrs);
    for (const a of template) if (a.value !== undefined) attrs.set(a.type, toBytes(a.value));
    const h = this.newHandle();
    this.objects.set(h.toString('hex'), { attrs, d: o.d ? Buffer.from(o.d) : undefined });
    return h;
  }

  C_DestroyObject(session: Buffer, object: Buffer): void {
    const hex = object.toString('hex');
    if (this.objects.has(hex)) {
      this.objects.get(hex)?.d?.fill(0);
      this.objects.delete(hex);
      return;
    }
    this.real.C_DestroyObject(session, object);
  }

  // ---- everything else passes through to SoftHSM2 ----

  C_Initialize(options?: InitializationOptions): void {
    this.real.C_Initialize(options);
  }
  C_Finalize(): void {
    this.pendingSign.clear();
    this.real.C_Finalize();
  }
  C_GetInfo(): ModuleInfo {
    return this.real.C_GetInfo();
  }
  C_GetSlotList(tokenPresent?: boolean): Buffer[] {
    return this.real.C_GetSlotList(tokenPresent);
  }
  C_GetTokenInfo(slot: Buffer): TokenInfo {
    return this.real.C_GetTokenInfo(slot);
  }
  C_OpenSession(slot: Buffer, flags: number): Buffer {
    return this.real.C_OpenSession(slot, flags);
  }
  C_CloseSession(session: Buffer): void {
    this.pendingSign.delete(session.toString('hex'));
    this.real.C_CloseSession(session);
  }
  C_GetSessionInfo(session: Buffer): SessionInfo {
    return this.real.C_GetSessionInfo(session);
  }
  C_Login(session: Buffer, userType: number, pin?: string): void {
    this.real.C_Login(session, userType, pin);
  }
  C_CreateObject(session: Buffer, template: Template): Buffer {
    return this.real.C_CreateObject(session, template);
  }
  C_GenerateKeyAsync(session: Buffer, mechanism: Mechanism, template: Template): Promise<Buffer> {
    return this.real.C_GenerateKeyAsync(session, mechanism, template);
  }
  C_WrapKeyAsync(session: Buffer, mechanism: Mechanism, wrappingKey: Buffer, key: Buffer, wrappedKey: Buffer): Promise<Buffer> {
    return this.real.C_WrapKeyAsync(session, mechanism, wrappingKey, key, wrappedKey);
  }
  C_UnwrapKeyAsync(session: Buffer, mechanism: Mechanism, unwrappingKey: Buffer, wrappedKey: Buffer, template: Template): Promise<Buffer> {
    return this.real.C_UnwrapKeyAsync(session, mechanism, unwrappingKey, wrappedKey, template);
  }
  close(): void {
    this.real.close();
  }
}
