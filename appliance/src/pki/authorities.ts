// The appliance's CAs as the rest of pki/ uses them: the stored record, the parsed certificate,
// and a Signer for the CA key from KeyCustody (obtained on first use and kept by the custody).
// Read side of what hierarchy.ts made at `yiqian init`.
import { readCertificate, type CertificateInfo } from '../asn1/certificate.js';
import { toPem } from '../crypto/der.js';
import type { KeyCustody, Signer } from '../crypto/interfaces.js';
import { caNotFound } from '../store/ca-repository.js';
import { issuanceError } from './issuance-errors.js';
import type { CaId, CaRecord, CaRepository, Hierarchy } from './types.js';

export interface LoadedCa {
  record: CaRecord;
  /** Certificate DER and its parsed fields (subject Name, key identifier …). */
  der: Buffer;
  info: CertificateInfo;
  /** Signer over the CA key (needs custody). */
  signer(): Promise<Signer>;
}

export interface Authorities {
  list(): Promise<CaRecord[]>;
  /** CA_NOT_FOUND (404), or CA_NOT_INITIALISED (503) when the data dir has no CA at all. */
  get(id: CaId): Promise<LoadedCa>;
  issuing(hierarchy: Hierarchy): Promise<LoadedCa>;
  /** Both roots, PEM, SM2 first. */
  rootsPem(): Promise<string>;
  /** PEM of the certificates from `id` up to, not including, its root (what a leaf's chain needs). */
  chainPem(id: CaId): Promise<string>;
}

const ORDER: CaId[] = ['sm2-root', 'sm2-issuing', 'ecdsa-root', 'ecdsa-issuing'];

export function createAuthorities(deps: { cas: CaRepository; custody?: KeyCustody }): Authorities {
  const parsed = new Map<string, { certificate: string; der: Buffer; info: CertificateInfo }>();
  // The custody resolves a key URI through its registry on every signer() call; a CA signs on
  // every issuance, so its Signer is kept (the custody's Signer survives token re-initialisation).
  const signers = new Map<string, Promise<Signer>>();

  async function notInitialised(id: CaId): Promise<never> {
    if ((await deps.cas.list()).length === 0) {
      throw issuanceError(
        'CA_NOT_INITIALISED',
        503,
        '此数据目录尚未建立证书机构（初始化早于 CA 功能）：请用 yiqian init --force 重新初始化',
        'this data directory has no certificate authority (it was initialised before the CA existed): re-initialise with yiqian init --force',
      );
    }
    throw caNotFound(id);
  }

  async function get(id: CaId): Promise<LoadedCa> {
    const record = await deps.cas.get(id);
    if (!record) return notInitialised(id);
    let p = parsed.get(id);
    if (!p || p.certificate !== record.certificate) {
      const der = Buffer.from(record.certificate, 'base64');
      p = { certificate: record.certificate, der, info: readCertificate(der) };
      parsed.set(id, p);
    }
    const { der, info } = p;
    return {
      record,
      der,
      info,
      signer: async () => {
        const custody = deps.custody;
        if (!custody) throw new Error('authorities were created without key custody: cannot sign');
        let signer = signers.get(record.keyUri);
        if (!signer) {
          signer = custody.signer(record.keyUri);
          signers.set(record.keyUri, signer);
          signer.catch(() => signers.delete(record.keyUri));
        }
        return signer;
      },
    };
  }

  return {
    async list() {
      const all = await deps.cas.list();
      return all.sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));
    },
    get,
    issuing: (h) => get(`${h}-issuing`),
    async rootsPem() {
      const roots = (await this.list()).filter((r) => r.role === 'root');
      if (roots.length === 0) await notInitialised('sm2-root');
      return roots.map((r) => toPem('CERTIFICATE', Buffer.from(r.certificate, 'base64'))).join('');
    },
    async chainPem(id) {
      const out: string[] = [];
      for (let ca = await get(id); ca.record.role !== 'root'; ) {
        out.push(toPem('CERTIFICATE', ca.der));
        if (!ca.record.parentId) break;
        ca = await get(ca.record.parentId);
      }
      return out.join('');
    },
  };
}
