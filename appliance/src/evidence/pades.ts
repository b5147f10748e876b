// PAdES baseline B-B signatures on the appliance's own PDFs (evidence reports; ETSI EN 319 142-1
// §5.2 / §6.2.1 B-B level). The signature dictionary (ISO 32000-1 §12.8.1) has SubFilter
// ETSI.CAdES.detached, a ByteRange that covers the whole file except the Contents hex string,
// and an M entry with the signing time; the CMS (signing/cms-sign.ts, RFC 5652 detached) carries
// content-type, message-digest and signing-certificate-v2 and NO signing-time attribute
// (EN 319 142-1 §5.2.1: "The signing-time attribute shall not be used"; the M entry is the time).
// Invisible signature field (Rect [0 0 0 0]) whose widget is on the first page; AcroForm
// SigFlags 3 (SignaturesExist | AppendOnly).
//
// Two steps, because the CMS covers the final bytes: addSignaturePlaceholder() before
// PDFDocument.save({ useObjectStreams: false }), then signPreparedPdf() on the saved bytes: it
// finds the placeholder, writes the real ByteRange over the padded one (same length), signs the
// two ranges and writes the hex CMS into the zero-filled Contents.
import { PDFArray, PDFDict, PDFDocument, PDFHexString, PDFName, PDFString } from 'pdf-lib';
import { fromPem } from '../crypto/der.js';
import type { KeyCustody, KeyInfo, Signer } from '../crypto/interfaces.js';
import type { CertificateService } from '../pki/certificate-service.js';
import type { CertificateRecord } from '../pki/types.js';
import { YiqianError } from '../errors.js';
import { signCms } from '../signing/cms-sign.js';

/** Room for the CMS: an ECDSA/RSA-4096 CMS with a two-certificate chain is < 6 KiB. */
export const DEFAULT_CONTENTS_BYTES = 16 * 1024;
/** A 10-digit number per ByteRange slot: files up to 9,999,999,999 bytes. */
const BYTE_RANGE_PLACEHOLDER = 9_999_999_999;

export const PadesCodes = {
  /** The PDF has no placeholder of addSignaturePlaceholder, or the CMS does not fit (500). */
  PADES_PLACEHOLDER_INVALID: 'PADES_PLACEHOLDER_INVALID',
} as const;

export interface PlaceholderOptions {
  signingTime: Date;
  /** Signature dictionary entries shown by readers. */
  name?: string;
  reason?: string;
  location?: string;
  contactInfo?: string;
  contentsBytes?: number;
}

function placeholderError(en: string): never {
  throw new YiqianError(PadesCodes.PADES_PLACEHOLDER_INVALID, 500, { zh: 'PDF 签名占位无效', en: `PDF signature placeholder: ${en}` });
}

/** Adds the signature field, widget and dictionary with a zero-filled Contents and a padded ByteRange. */
export function addSignaturePlaceholder(doc: PDFDocument, o: PlaceholderOptions): void {
  const ctx = doc.context;
  const contentsBytes = o.contentsBytes ?? DEFAULT_CONTENTS_BYTES;
  const sigDict = ctx.obj({
    Type: 'Sig',
    Filter: 'Adobe.PPKLite',
    SubFilter: 'ETSI.CAdES.detached',
    ByteRange: [0, BYTE_RANGE_PLACEHOLDER, BYTE_RANGE_PLACEHOLDER, BYTE_RANGE_PLACEHOLDER],
  });
  sigDict.set(PDFName.of('Contents'), PDFHexString.of('0'.repeat(contentsBytes * 2)));
  sigDict.set(PDFName.of('M'), PDFString.fromDate(o.signingTime));
  if (o.name) sigDict.set(PDFName.of('Name'), PDFHexString.fromText(o.name));
  if (o.reason) sigDict.set(PDFName.of('Reason'), PDFHexString.fromText(o.reason));
  if (o.location) sigDict.set(PDFName.of('Location'), PDFHexString.fromText(o.location));
  if (o.contactInfo) sigDict.set(PDFName.of('ContactInfo'), PDFHexString.fromText(o.contactInfo));
  const sigRef = ctx.register(sigDict);

  const page = doc.getPage(0);
  const widget = ctx.obj({
    Type: 'Annot',
    Subtype: 'Widget',
    FT: 'Sig',
    Rect: [0, 0, 0, 0],
    // Print (4) | Locked (128).
    F: 132,
    P: page.ref,
  });
  widget.set(PDFName.of('T'), PDFHexString.fromText('evidence-report-signature'));
  widget.set(PDFName.of('V'), sigRef);
  const widgetRef = ctx.register(widget);
  const annots = page.node.lookupMaybe(PDFName.of('Annots'), PDFArray);
  if (annots) annots.push(widgetRef);
  else page.node.set(PDFName.of('Annots'), ctx.obj([widgetRef]));
  const acroForm = ctx.obj({ SigFlags: 3 }) as PDFDict;
  acroForm.set(PDFName.of('Fields'), ctx.obj([widgetRef]));
  doc.catalog.set(PDFName.of('AcroForm'), ctx.register(acroForm));
}

export interface PadesSigner {
  signer: Signer;
  /** DER of the signing certificate and of its issuing CA(s) up to, not including, the root. */
  certificate: Buffer;
  chain: Buffer[];
}

/** Finds the placeholder, fixes the ByteRange, signs (CAdES detached, no signingTime) and fills Contents. */
export async function signPreparedPdf(pdf: Uint8Array, s: PadesSigner): Promise<Buffer> {
  const bytes = Buffer.from(pdf);
  const text = bytes.toString('latin1');
  const br = /\/ByteRange\s*\[\s*0\s+9999999999\s+9999999999\s+9999999999\s*\]/.exec(text);
  if (!br) placeholderError('no ByteRange placeholder');
  const contentsAt = text.indexOf('/Contents', br.index);
  const lt = text.indexOf('<', contentsAt);
  const gt = text.indexOf('>', lt);
  if (contentsAt < 0 || lt < 0 || gt < 0 || !/^0+$/.test(text.slice(lt + 1, gt))) placeholderError('no zero-filled Contents after the ByteRange');
  if (text.indexOf('/ByteRange', br.index + 1) >= 0) placeholderError('more than one signature placeholder');
  // The excluded range is the whole hex string including its delimiters (ISO 32000-1 §12.8.1).
  const start = lt;
  const end = gt + 1;
  const ranges = [0, start, end, bytes.length - end];
  const brText = `/ByteRange [${ranges.join(' ')}]`;
  if (brText.length > br[0].length) placeholderError('ByteRange does not fit');
  bytes.write(brText.padEnd(br[0].length, ' '), br.index, 'latin1');

  const signed = Buffer.concat([bytes.subarray(0, start), bytes.subarray(end)]);
  const cms = await signCms({ signer: s.signer, certificate: s.certificate, chain: s.chain, content: signed, detached: true, form: 'rfc5652', omitSigningTime: true });
  const hex = cms.toString('hex');
  if (hex.length > gt - lt - 1) placeholderError(`the CMS (${cms.length} bytes) does not fit the Contents placeholder`);
  bytes.write(hex, lt + 1, 'latin1');
  return bytes;
}

// ---- the appliance's report-signing identity --------------------------------------------------

/** Token label of the dedicated key that signs evidence reports. */
export const REPORT_KEY_LABEL = 'evidence-report';

export interface ReportSignerDeps {
  custody: Pick<KeyCustody, 'list' | 'generate' | 'signer'>;
  certificates: Pick<CertificateService, 'issueForAppliance' | 'query' | 'chainPem'>;
  /** The subject's organisation, for the certificate's CN. */
  organisation: string;
  /** Renew when the certificate has less than this left (default 30 days). */
  renewBeforeMs?: number;
  clock?: () => number;
}

/**
 * The PAdES signer of evidence reports: a dedicated ECDSA P-256 key 'evidence-report' in the HSM
 * (CKM_ECDSA) with a 'seal' certificate (digitalSignature + nonRepudiation) from the ECDSA
 * issuing CA, both made at first use (custody.generate + issueForAppliance) and reused after.
 * ECDSA rather than SM2: pdfsig and common PDF readers verify ECDSA/RSA only (PEERS.md). Calls
 * are serialised so two first requests do not make two keys.
 */
export function createReportSigner(deps: ReportSignerDeps): () => Promise<PadesSigner> {
  const clock = deps.clock ?? Date.now;
  const renewBefore = deps.renewBeforeMs ?? 30 * 86_400_000;
  let cached: { signer: PadesSigner; notAfter: number } | undefined;
  let pending: Promise<PadesSigner> | undefined;

  async function load(): Promise<PadesSigner> {
    let key: KeyInfo | undefined = (await deps.custody.list()).find((k) => k.label === REPORT_KEY_LABEL);
    key ??= await deps.custody.generate({ algorithm: 'ecdsa-p256', label: REPORT_KEY_LABEL, purpose: 'PAdES signature of evidence reports (ETSI EN 319 142-1 B-B)', mode: 'hsm' });
    let record: CertificateRecord | undefined;
    let cursor: string | undefined;
    const until = new Date(clock() + renewBefore).toISOString();
    do {
      const page = await deps.certificates.query({ caId: 'ecdsa-issuing', profile: 'seal', status: 'good', renewed: false, expiresAfter: until }, { limit: 500, ...(cursor ? { cursor } : {}) });
      for (const r of page.items) if (r.keyOrigin === 'appliance' && r.keyRef === key.id) record = r;
      cursor = page.next;
    } while (cursor);
    let chainPem: string;
    if (!record) {
      const issued = await deps.certificates.issueForAppliance(
        { profile: 'seal', hierarchy: 'ecdsa', commonName: `${deps.organisation} 存证报告签名 Evidence Report Signer`.slice(0, 64), keyRef: key.id, publicKeyInfo: key.publicKeyInfo, keyAlgorithm: key.algorithm },
        'system:evidence-report',
      );
      record = issued.record;
      chainPem = issued.chainPem;
    } else {
      chainPem = await deps.certificates.chainPem(record);
    }
    const signer: PadesSigner = {
      signer: await deps.custody.signer(key.id),
      certificate: Buffer.from(record.certificate, 'base64'),
      chain: fromPem(chainPem).filter((p) => p.label === 'CERTIFICATE').map((p) => p.der),
    };
    cached = { signer, notAfter: Date.parse(record.notAfter) };
    return signer;
  }

  return async () => {
    if (cached && cached.notAfter - clock() > renewBefore) return cached.signer;
    pending ??= load().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}
