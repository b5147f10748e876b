// Profiles: the built-in defaults, config overrides and new profiles based on a built-in one, the
// config's pki section, and the request checks that profiles drive (subject fields, extensions).
import t from 'tap';
import { KEY_PURPOSES } from '../../appliance/src/asn1/certificate.js';
import { defaultConfig, validateConfig } from '../../appliance/src/config/config.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { defaultProfiles, distributionUrls, resolveProfiles, validateProfileConfig } from '../../appliance/src/pki/profiles.js';
import { resolveExtensions, resolveSubject } from '../../appliance/src/pki/request-fields.js';
import { nameToString } from '../../appliance/src/asn1/name.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isYiqianError(e) ? e.code : String(e);
  }
  return undefined;
}

t.test('built-in profiles', async (t) => {
  const p = new Map(defaultProfiles().map((x) => [x.name, x]));
  t.same([...p.keys()], ['personal', 'organisation', 'seal', 'device', 'tsa', 'ocsp', 'encryption', 'key-agreement']);
  t.same(p.get('tsa')!.extKeyUsage, [KEY_PURPOSES.timeStamping]);
  t.equal(p.get('tsa')!.extKeyUsageCritical, true, 'RFC 3161: critical timeStamping, the only EKU');
  t.same(p.get('ocsp')!.extKeyUsage, [KEY_PURPOSES.OCSPSigning]);
  t.equal(p.get('ocsp')!.ocspNoCheck, true);
  t.equal(p.get('tsa')!.issuance, 'appliance');
  t.equal(p.get('device')!.requireSubjectAltName, true);
  t.same(p.get('personal')!.required, ['commonName', 'employeeId']);
  for (const x of p.values()) {
    t.ok(x.crlDistributionPoint && x.authorityInfoAccess, `${x.name}: CDP and AIA`);
    t.ok(x.validityDays <= x.maxValidityDays);
    t.same(x.policies, [], `${x.name}: no private OIDs by default`);
  }
  t.same(distributionUrls('http://ca.hospital.example/', 'sm2-issuing'), {
    crl: 'http://ca.hospital.example/pki/crl/sm2-issuing.crl',
    ocsp: 'http://ca.hospital.example/ocsp',
    caIssuers: 'http://ca.hospital.example/pki/ca/sm2-issuing.crt',
  });
});

t.test('overrides and new profiles from config', async (t) => {
  const profiles = resolveProfiles({
    personal: { validityDays: 365, policies: [{ oid: '2.999.2.1' }], namedExtensions: [{ name: 'practisingLicence', oid: '2.999.1.1', type: 'utf8String' }] },
    'nurse-short': { base: 'personal', validityDays: 90, maxValidityDays: 180, extKeyUsage: ['clientAuth', '2.999.3.1'] },
  });
  const personal = profiles.get('personal')!;
  t.equal(personal.validityDays, 365);
  t.same(personal.namedExtensions, [{ name: 'practisingLicence', oid: '2.999.1.1', type: 'utf8String', critical: false, required: false }]);
  t.same(personal.required, ['commonName', 'employeeId'], 'untouched fields keep the defaults');
  const nurse = profiles.get('nurse-short')!;
  t.equal(nurse.name, 'nurse-short');
  t.same(nurse.extKeyUsage, [KEY_PURPOSES.clientAuth, '2.999.3.1'], 'purpose names become OIDs');
  t.same(nurse.allowed, personal.allowed);
});

t.test('invalid profile config: every problem named', async (t) => {
  const problems = validateProfileConfig({
    personal: { validityDays: 0, keyUsage: ['keyCertSign'], bogus: 1 },
    seal: { base: 'personal' },
    Bad_Name: { base: 'personal' },
    orphan: { validityDays: 10 },
    device: { extKeyUsage: ['notAPurpose'], policies: [{ oid: 'x' }] },
    organisation: { namedExtensions: [{ name: 'k', oid: '2.5.29.19', type: 'utf8String' }, { name: 'k2', oid: '2.999.1', type: 'float' }] },
    tsa: { validityDays: 4000 },
    ocsp: { required: ['employeeId'] },
  });
  const text = problems.join('\n');
  for (const re of [
    /pki\.profiles\.personal\.validityDays must be an integer/, /personal\.keyUsage: keyCertSign and cRLSign are for CA certificates only/,
    /personal\.bogus is not a profile setting/, /seal\.base is only for new profiles/, /Bad_Name: profile names/, /orphan\.base must name a built-in profile/,
    /device\.extKeyUsage must be an array of OIDs/, /device\.policies must be an array/, /namedExtensions\[0\]\.oid 2\.5\.29\.19 is an extension the CA writes itself/,
    /namedExtensions\[1\]\.type must be one of/,
  ]) t.match(text, re);
  t.same(validateProfileConfig({ tsa: { validityDays: 4000 } }), ['pki.profiles.tsa: validityDays 4000 exceeds maxValidityDays 3650']);
  t.same(validateProfileConfig({ ocsp: { required: ['commonName', 'employeeId'] } }), ['pki.profiles.ocsp: required field employeeId is not in allowed']);
  t.throws(() => resolveProfiles({ personal: { validityDays: -1 } }), /invalid pki\.profiles/);
  t.same(validateProfileConfig(undefined), []);
});

t.test('config: pki section validated; a config from before the CA gets the defaults', async (t) => {
  const good = validateConfig(JSON.parse(JSON.stringify(defaultConfig())));
  t.match(good.pki, { ecdsaAlgorithm: 'ecdsa-p256', organisation: '医签 yiqian', country: 'CN', profiles: {} });
  const old = JSON.parse(JSON.stringify(defaultConfig()));
  delete old.pki;
  t.equal(validateConfig(old).pki.ecdsaAlgorithm, 'ecdsa-p256');
  const rsa = JSON.parse(JSON.stringify(defaultConfig()));
  rsa.pki.ecdsaAlgorithm = 'rsa-3072';
  t.equal(validateConfig(rsa).pki.ecdsaAlgorithm, 'rsa-3072', 'RSA-3072 selectable');
  const bad = JSON.parse(JSON.stringify(defaultConfig()));
  bad.pki = { ecdsaAlgorithm: 'rsa-1024', organisation: '', country: 'China', profiles: { personal: { validityDays: 'long' } }, extra: true };
  let message = '';
  try {
    validateConfig(bad);
  } catch (e) {
    message = isYiqianError(e) ? `${e.code}: ${e.text.en}` : String(e);
  }
  for (const re of [/CONFIG_INVALID/, /pki\.ecdsaAlgorithm must be 'ecdsa-p256' or 'rsa-3072'/, /pki\.organisation must be/, /pki\.country must be two/, /pki\.extra is not a setting/, /pki\.profiles\.personal\.validityDays/]) {
    t.match(message, re);
  }
});

t.test('subject fields per profile', async (t) => {
  const profiles = resolveProfiles({});
  const defaults = { organisation: '某医院', country: 'CN' };
  const s = resolveSubject(profiles.get('personal')!, { commonName: '张三', employeeId: 'E1', ou: '心内科', titleLevel: '主任医师', departmentId: 'D1', email: 'z@h.example' }, defaults);
  t.equal(nameToString(s.name), 'serialNumber=E1,CN=张三,title=主任医师,OU=心内科,O=某医院,C=CN');
  t.same(s.san, { dnsNames: [], ipAddresses: [], emails: ['z@h.example'] });
  t.equal(s.departmentId, 'D1');
  const device = resolveSubject(profiles.get('device')!, { commonName: 'his', dnsNames: ['HIS.Hospital.example', 'his.hospital.example', '*.pacs.example'], ipAddresses: ['10.1.1.1'] }, defaults);
  t.same(device.san, { dnsNames: ['his.hospital.example', '*.pacs.example'], ipAddresses: ['10.1.1.1'], emails: [] }, 'DNS names lower-cased, de-duplicated');
  const cases: [string, () => unknown, string][] = [
    ['missing CN', () => resolveSubject(profiles.get('organisation')!, {}, defaults), 'PROFILE_FIELD_MISSING'],
    ['blank CN', () => resolveSubject(profiles.get('organisation')!, { commonName: ' x' }, defaults), 'SUBJECT_FIELD_INVALID'],
    ['CN too long', () => resolveSubject(profiles.get('organisation')!, { commonName: '医'.repeat(65) }, defaults), 'SUBJECT_FIELD_INVALID'],
    ['control character', () => resolveSubject(profiles.get('organisation')!, { commonName: 'a\u0000b' }, defaults), 'SUBJECT_FIELD_INVALID'],
    ['title on an organisation', () => resolveSubject(profiles.get('organisation')!, { commonName: 'x', titleLevel: 'y' }, defaults), 'SUBJECT_FIELD_NOT_ALLOWED'],
    ['DNS name on a person', () => resolveSubject(profiles.get('personal')!, { commonName: 'x', employeeId: 'E', dnsNames: ['a.example'] }, defaults), 'SUBJECT_FIELD_NOT_ALLOWED'],
    ['bad IP', () => resolveSubject(profiles.get('device')!, { commonName: 'x', ipAddresses: ['300.1.1.1'] }, defaults), 'SUBJECT_FIELD_INVALID'],
    ['bad e-mail', () => resolveSubject(profiles.get('personal')!, { commonName: 'x', employeeId: 'E', email: 'no-at-sign' }, defaults), 'SUBJECT_FIELD_INVALID'],
    ['label too long', () => resolveSubject(profiles.get('device')!, { commonName: 'x', dnsNames: [`${'a'.repeat(64)}.example`] }, defaults), 'SUBJECT_FIELD_INVALID'],
  ];
  for (const [what, f, code] of cases) t.equal(codeOf(f), code, what);
});

t.test('extensions per profile', async (t) => {
  const profiles = resolveProfiles({ personal: { namedExtensions: [{ name: 'practisingLicence', oid: '2.999.1.1', type: 'utf8String' }] } });
  const personal = profiles.get('personal')!;
  t.same(resolveExtensions(personal, [{ name: 'practisingLicence', value: 'L1' }, { oid: '2.999.9', type: 'octets-hex', value: '00ff' }]), [
    { kind: 'custom', oid: '2.999.1.1', critical: false, value: { type: 'utf8String', value: 'L1' } },
    { kind: 'custom', oid: '2.999.9', critical: false, value: { type: 'octets-hex', value: '00ff' } },
  ]);
  t.same(resolveExtensions(personal, [{ oid: '2.999.1.1', value: 'by OID' }])[0], { kind: 'custom', oid: '2.999.1.1', critical: false, value: { type: 'utf8String', value: 'by OID' } }, 'a named extension by its OID');
  const cases: [string, unknown[], string][] = [
    ['twice', [{ name: 'practisingLicence', value: 'a' }, { oid: '2.999.1.1', value: 'b' }], 'EXTENSION_NOT_ALLOWED'],
    ['wrong type for a named one', [{ name: 'practisingLicence', type: 'integer', value: 1 }], 'EXTENSION_NOT_ALLOWED'],
    ['no type', [{ oid: '2.999.9', value: 'x' }], 'EXTENSION_NOT_ALLOWED'],
    ['bad OID', [{ oid: '2.999.', type: 'utf8String', value: 'x' }], 'EXTENSION_NOT_ALLOWED'],
    ['AIA', [{ oid: '1.3.6.1.5.5.7.1.1', type: 'der-hex', value: '3000' }], 'EXTENSION_NOT_ALLOWED'],
    ['bad value', [{ oid: '2.999.9', type: 'boolean', value: 'yes' }], 'EXTENSION_INVALID'],
    ['too many', Array.from({ length: 21 }, (_, i) => ({ oid: `2.999.${i}`, type: 'boolean', value: true })), 'EXTENSION_NOT_ALLOWED'],
  ];
  for (const [what, input, code] of cases) t.equal(codeOf(() => resolveExtensions(personal, input as never)), code, what);
  t.equal(codeOf(() => resolveExtensions(profiles.get('device')!, [{ oid: '2.999.9', type: 'boolean', value: true }])), 'EXTENSION_NOT_ALLOWED', 'device takes no custom extensions');
});
