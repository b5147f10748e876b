// RFC 7512 URIs: the examples of RFC 7512 §3, round trips, identity, matching, bad input.
import t from 'tap';
import { formatPkcs11Uri, parsePkcs11Uri, pkcs11UriMatches, samePkcs11Object } from '../../firmware-bridge/pkcs11/pkcs11-uri.js';
import { YiqianError } from '../../appliance/src/errors.js';

t.test('RFC 7512 §3 examples parse', async (tt) => {
  tt.same(parsePkcs11Uri('pkcs11:'), {}, 'the empty URI matches everything');
  tt.same(parsePkcs11Uri('pkcs11:object=my-pubkey;type=public'), { object: 'my-pubkey', type: 'public' });
  tt.same(parsePkcs11Uri('pkcs11:object=my-key;type=private?pin-source=file:/etc/token'), { object: 'my-key', type: 'private', query: { 'pin-source': 'file:/etc/token' } });
  const u = parsePkcs11Uri('pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin');
  tt.equal(u.token, 'The Software PKCS#11 Softtoken');
  tt.equal(u.manufacturer, 'Snake Oil, Inc.');
  tt.equal(u.model, '1.0');
  tt.equal(u.serial, '', 'empty value is allowed');
  tt.equal(u.type, 'cert');
  tt.same(u.id, Buffer.from('69953e5cf4bdec91', 'hex'));
  tt.same(parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-name=mypkcs11'), { object: 'my-sign-key', type: 'private', query: { 'module-name': 'mypkcs11' } });
  tt.same(parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1').query, { 'module-path': '/mnt/libmypkcs11.so.1' });
  tt.equal(parsePkcs11Uri('pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin').query?.['pin-value'], 'the-pin');
  tt.equal(parsePkcs11Uri('pkcs11:slot-description=Sun%20Metaslot').slotDescription, 'Sun Metaslot');
  tt.same(parsePkcs11Uri('pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23'), {
    libraryManufacturer: 'Snake Oil, Inc.',
    libraryDescription: 'Soft Token Library',
    libraryVersion: '1.23',
  });
  tt.equal(parsePkcs11Uri('pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert').token, 'A name with a substring %;');
  tt.same(parsePkcs11Uri('pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert').token, 'Name with a small A with acute: á');
  tt.equal(parsePkcs11Uri('pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b'.replace('vendor-aaa', 'x-vendor-aaa').replace('vendor-bbb', 'x-vendor-bbb')).vendor?.['x-vendor-aaa'], 'value-a');
  tt.equal(parsePkcs11Uri('pkcs11:slot-id=8;object=k').slotId, 8);
  tt.equal(parsePkcs11Uri('PKCS11:object=k').object, 'k', 'scheme is case-insensitive');
});

t.test('format and round trips', async (tt) => {
  tt.equal(formatPkcs11Uri({ token: 'yiqian', object: 'device-tls', type: 'private' }), 'pkcs11:token=yiqian;object=device-tls;type=private');
  const cases = [
    { token: 'yiqian', object: 'ca-root-sm2' },
    { token: '医签', object: '签名密钥 #1;/?%', type: 'private' as const, id: Buffer.from([0, 1, 0xfe, 0xff]) },
    { token: 'a&b', manufacturer: 'Snake Oil, Inc.', serial: '0042', model: 'v2', slotId: 3, object: 'k=v', vendor: { 'x-ha': 'node 1' }, query: { 'pin-source': 'file:/etc/pin|x', 'module-path': '/usr/lib/softhsm/libsofthsm2.so' } },
    { libraryManufacturer: 'L', libraryDescription: 'D d', libraryVersion: '2.6', slotDescription: 'S', slotManufacturer: 'M', object: '' },
  ];
  for (const c of cases) {
    const s = formatPkcs11Uri(c);
    tt.same(parsePkcs11Uri(s), c, `round trip ${s}`);
    tt.equal(formatPkcs11Uri(parsePkcs11Uri(s)), s, 'format is stable');
  }
  tt.equal(formatPkcs11Uri({ token: '医签', object: 'a b;c' }), 'pkcs11:token=%E5%8C%BB%E7%AD%BE;object=a%20b%3Bc');
  tt.equal(formatPkcs11Uri({ object: 'k', id: Buffer.from('AB') }), 'pkcs11:object=k;id=%41%42', 'id fully percent-encoded');
  tt.equal(formatPkcs11Uri({ object: 'k', query: { 'pin-value': '1234' } }, { identityOnly: true }), 'pkcs11:object=k');
});

t.test('identity ignores the query; matching follows RFC 7512', async (tt) => {
  tt.ok(samePkcs11Object('pkcs11:token=yiqian;object=k?pin-value=1', 'pkcs11:object=k;token=yiqian?module-path=/x.so'), 'order and query do not matter');
  tt.notOk(samePkcs11Object('pkcs11:token=yiqian;object=k', 'pkcs11:token=yiqian;object=k;type=private'));
  tt.ok(samePkcs11Object('pkcs11:object=%6B', 'pkcs11:object=k'), 'percent-encoding of an unreserved character is the same value');
  const full = parsePkcs11Uri('pkcs11:token=yiqian;object=k;type=private;id=%01%02');
  tt.ok(pkcs11UriMatches(parsePkcs11Uri('pkcs11:object=k'), full));
  tt.ok(pkcs11UriMatches(parsePkcs11Uri('pkcs11:id=%01%02'), full));
  tt.notOk(pkcs11UriMatches(parsePkcs11Uri('pkcs11:object=k;id=%01'), full));
  tt.notOk(pkcs11UriMatches(parsePkcs11Uri('pkcs11:token=other;object=k'), full));
});

t.test('bad URIs are INVALID_KEY_URI (400) with a reason; a PIN never leaks into the error', async (tt) => {
  const bad: Array<[string, RegExp]> = [
    ['yiqian:device-tls', /scheme/],
    ['pkcs11', /scheme/],
    ['https://x/pkcs11:object=a', /scheme/],
    ['pkcs11:object', /name=value/],
    ['pkcs11:=x', /name=value/],
    ['pkcs11:object=a;object=b', /twice/],
    ['pkcs11:object=a b', /percent-encoded/],
    ['pkcs11:object=a/b', /percent-encoded/],
    ['pkcs11:object=%G1', /percent-encoding/],
    ['pkcs11:object=abc%2', /percent-encoding/],
    ['pkcs11:object=%FF%FE', /UTF-8/],
    ['pkcs11:type=secret', /object type/],
    ['pkcs11:colour=blue', /unknown path attribute/],
    ['pkcs11:slot-id=abc', /slot-id/],
    ['pkcs11:object=a#frag', /fragment/],
    ['pkcs11:object=a?pin-value=1&pin-value=2', /twice/],
    ['pkcs11:object=a?colour=blue', /unknown query attribute/],
    ['pkcs11:object=a?pin-value', /name=value/],
  ];
  for (const [uri, why] of bad) {
    try {
      parsePkcs11Uri(uri);
      tt.fail(`accepted ${uri}`);
    } catch (e) {
      tt.ok(e instanceof YiqianError && e.code === 'INVALID_KEY_URI' && e.status === 400, `rejects ${uri}`);
      tt.match((e as YiqianError).text.en, why, `reason for ${uri}`);
      tt.ok((e as YiqianError).text.zh.length > 0, 'zh text');
    }
  }
  try {
    parsePkcs11Uri('pkcs11:object=a b?pin-value=secret-pin');
  } catch (e) {
    tt.notMatch(JSON.stringify((e as YiqianError).detail), /secret-pin/, 'the PIN is redacted from the detail');
  }
  tt.throws(() => formatPkcs11Uri({ object: 'k', vendor: { vendor: 'x' } }), /INVALID_KEY_URI/, 'vendor attributes need the x- prefix');
});
