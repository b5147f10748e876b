// What the bridge reads from its peers: chronyc's tracking CSV (lines captured from chronyd 4.3
// on this machine), gpsd's JSON (lines captured from gpsd 3.22, plus gpsd_json(5)'s PPS form),
// and the NMEA checksum our gpsd test feed relies on.
import t from 'tap';
import { parseChronyTracking } from '../../firmware-bridge/timesource/chrony-reader.js';
import { parseGpsdMessage, parseGpsdTime } from '../../firmware-bridge/timesource/gpsd-client.js';
import { nmeaChecksum, nmeaCycle, nmeaSentence } from '../helpers/gpsd-peer.js';

t.test('chronyc -c tracking: a synchronised client with a 0.25 s offset', async (t) => {
  const r = parseChronyTracking('7F000001,127.0.0.1,6,1795400442.185063349,0.249997526,-0.000000327,0.000001736,0.017,-0.024,1.399,0.000007661,0.000000878,0.3,Normal\n');
  t.same(r, {
    refId: '7F000001',
    refName: '127.0.0.1',
    stratum: 6,
    refTime: Number('1795400442.185063349'),
    systemTimeOffset: 0.249997526,
    lastOffset: -0.000000327,
    rmsOffset: 0.000001736,
    frequencyPpm: 0.017,
    residualFrequencyPpm: -0.024,
    skewPpm: 1.399,
    rootDelay: 0.000007661,
    rootDispersion: 0.000000878,
    updateInterval: 0.3,
    leap: 'Normal',
  });
});

t.test('chronyc -c tracking: not synchronised, and right after the first update', async (t) => {
  const u = parseChronyTracking('00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised');
  t.equal(u.leap, 'Not synchronised');
  t.equal(u.stratum, 0);
  t.equal(u.refName, '');
  t.equal(u.refTime, 0);
  const first = parseChronyTracking('7F000001,127.0.0.1,6,1795401075.070718988,0.249996975,-0.249996975,0.249996975,0.000,8.321,1000000.000,0.000009346,0.854198873,0.0,Normal');
  t.equal(first.skewPpm, 1_000_000, 'a first update: skew unknown');
  t.equal(first.rootDispersion, 0.854198873, 'and a large root dispersion');
  t.equal(parseChronyTracking('7f00a001,x,2,1.5,-1.25e-3,0,0,0,0,0,0,0,16.0,Insert second').refId, '7F00A001', 'hex upper-cased; exponents accepted');
});

t.test('chronyc -c tracking: what is refused', async (t) => {
  const good = '7F000001,127.0.0.1,6,1795400442.185063349,0.249997526,-0.000000327,0.000001736,0.017,-0.024,1.399,0.000007661,0.000000878,0.3,Normal';
  const f = good.split(',');
  const withField = (i: number, v: string): string => f.map((x, j) => (j === i ? v : x)).join(',');
  t.throws(() => parseChronyTracking(''), /expected 14 CSV fields, got 1/);
  t.throws(() => parseChronyTracking('506 Cannot talk to daemon'), /expected 14 CSV fields/);
  t.throws(() => parseChronyTracking(`${good},extra`), /got 15/);
  t.throws(() => parseChronyTracking(f.slice(0, 13).join(',')), /got 13/);
  t.throws(() => parseChronyTracking(withField(0, 'localhost')), /reference id is not 8 hex digits/);
  t.throws(() => parseChronyTracking(withField(4, '0.25s')), /system time offset is not a number/);
  t.throws(() => parseChronyTracking(withField(4, '')), /system time offset is not a number/);
  t.throws(() => parseChronyTracking(withField(11, 'NaN')), /root dispersion is not a number/);
  t.throws(() => parseChronyTracking(withField(2, '17')), /stratum out of range/);
  t.throws(() => parseChronyTracking(withField(2, '1.5')), /stratum out of range/);
  t.throws(() => parseChronyTracking(withField(13, 'Unknown')), /unknown leap status/);
});

t.test('gpsd JSON: TPV, TOFF, PPS, VERSION, others', async (t) => {
  const tpv = parseGpsdMessage(
    '{"class":"TPV","device":"tcp://127.0.0.1:44133","mode":3,"time":"2026-11-23T02:22:01.950Z","ept":0.005,"lat":39.910000000,"lon":116.390000000,"altHAE":42.0000,"eph":17.100}',
  );
  t.same(tpv, { class: 'TPV', device: 'tcp://127.0.0.1:44133', mode: 3, time: '2026-11-23T02:22:01.950Z', timeMs: Date.UTC(2026, 10, 23, 2, 22, 1, 950), ept: 0.005 });
  t.same(parseGpsdMessage('{"class":"TPV","device":"/dev/ttyS0","mode":1}'), { class: 'TPV', device: '/dev/ttyS0', mode: 1, time: null, timeMs: null, ept: null });
  t.equal((parseGpsdMessage('{"class":"TPV","mode":7,"time":"garbage"}') as { mode: number }).mode, 0, 'an impossible mode counts as unknown');
  t.equal((parseGpsdMessage('{"class":"TPV","mode":3,"time":"garbage"}') as { time: unknown }).time, null, 'an unparsable time is no time');

  const toff = parseGpsdMessage('{"class":"TOFF","device":"tcp://127.0.0.1:44133","real_sec":1795400581, "real_nsec":30000000,"clock_sec":1795400581,"clock_nsec":31389859}');
  t.equal(toff.class, 'TOFF');
  if (toff.class === 'TOFF') {
    t.ok(Math.abs(toff.offsetMs - -1.389859) < 1e-9, 'real − clock in ms');
    t.equal(toff.precision, null);
  }
  // gpsd_json(5) PPS: the GPS second at the pulse edge vs the system clock then.
  const pps = parseGpsdMessage('{"class":"PPS","device":"/dev/pps0","real_sec":1795400600,"real_nsec":0,"clock_sec":1795400599,"clock_nsec":999998000,"precision":-20}');
  t.equal(pps.class, 'PPS');
  if (pps.class === 'PPS') {
    t.ok(Math.abs(pps.offsetMs - 0.002) < 1e-9, 'clock 2 µs behind the pulse → +0.002 ms');
    t.equal(pps.precision, -20);
  }
  t.throws(() => parseGpsdMessage('{"class":"PPS","real_sec":1}'), /PPS without real\/clock times/);
  t.same(parseGpsdMessage('{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}'), { class: 'VERSION', release: '3.22', protoMajor: 3, protoMinor: 14 });
  t.same(parseGpsdMessage('{"class":"ERROR","message":"Unrecognized request"}'), { class: 'ERROR', message: 'Unrecognized request' });
  t.same(parseGpsdMessage('{"class":"SKY","satellites":[]}'), { class: 'OTHER', name: 'SKY' });
  t.throws(() => parseGpsdMessage('{"class":'), /not JSON/);
  t.throws(() => parseGpsdMessage('[1,2]'), /without a class/);
  t.throws(() => parseGpsdMessage('null'), /without a class/);
});

t.test('gpsd time strings', async (t) => {
  t.equal(parseGpsdTime('2026-11-23T02:22:01Z'), Date.UTC(2026, 10, 23, 2, 22, 1));
  t.equal(parseGpsdTime('2026-11-23T02:22:01.5Z'), Date.UTC(2026, 10, 23, 2, 22, 1, 500));
  t.ok(Math.abs(parseGpsdTime('2026-11-23T02:22:01.123456789Z')! - (Date.UTC(2026, 10, 23, 2, 22, 1) + 123.456789)) < 1e-6, 'sub-millisecond digits kept');
  t.equal(parseGpsdTime('2026-11-23T02:22:01.950'), undefined, 'UTC only');
  t.equal(parseGpsdTime('2026-13-23T02:22:01Z'), undefined);
  t.equal(parseGpsdTime('yesterday'), undefined);
});

t.test('NMEA checksums', async (t) => {
  // The textbook sentences (NMEA 0183 references quote these with their checksums).
  t.equal(nmeaChecksum('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,'), '47');
  t.equal(nmeaChecksum('GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W'), '6A');
  t.equal(nmeaSentence('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,'), '$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n');
  t.equal(nmeaChecksum(''), '00');
  t.equal(nmeaChecksum('A'), '41', 'two hex digits, upper case');
  const cycle = nmeaCycle(new Date(Date.UTC(2026, 10, 23, 2, 22, 1, 950)), true).split('\r\n').filter(Boolean);
  t.equal(cycle.length, 2);
  t.match(cycle[0], /^\$GPRMC,022201\.95,A,.*,231126,,,A\*[0-9A-F]{2}$/);
  t.match(cycle[1], /^\$GPGGA,022201\.95,.*,1,08,/);
  for (const s of cycle) {
    const [body, cs] = s.slice(1).split('*');
    t.equal(cs, nmeaChecksum(body), `checksum of ${s.slice(0, 6)}`);
  }
  t.match(nmeaCycle(new Date(), false), /^\$GPRMC,\d{6}\.\d{2},V,/, 'no fix: status V');
});
