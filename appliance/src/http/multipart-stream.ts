// A streaming multipart/form-data reader (RFC 7578 over RFC 2046 §5.1.1) for the evidence file
// upload: parts come out as events, part bodies as chunks as they arrive, so a 200 MiB file part
// is never held in memory. Only what uploads need: Content-Disposition name/filename and
// Content-Type of each part; no nested multiparts, no Content-Transfer-Encoding (RFC 7578 §4.7).
import { YiqianError } from '../errors.js';

export type MultipartEvent = { type: 'part'; name: string; filename?: string; contentType?: string } | { type: 'data'; chunk: Buffer };

const MAX_PART_HEADER = 16 * 1024;
const MAX_PARTS = 16;

function invalid(en: string, zh: string): YiqianError {
  return new YiqianError('FILE_FORM_INVALID', 400, { zh: `表单无效：${zh}`, en: `invalid form: ${en}` });
}

/** The boundary parameter of a multipart Content-Type (RFC 2046 §5.1.1: 1–70 characters). */
export function multipartBoundary(contentType: string): string | undefined {
  const m = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^;\s"]{1,70}))\s*(?:;|$)/i.exec(contentType);
  const b = m?.[1] ?? m?.[2];
  return b !== undefined && /^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$/.test(b) ? b : undefined;
}

function params(header: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /;\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (let m = re.exec(header); m; m = re.exec(header)) out.set(m[1]!.toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!);
  return out;
}

function partHeaders(block: string): { name: string; filename?: string; contentType?: string } {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split('\r\n')) {
    const i = line.indexOf(':');
    if (i <= 0) throw invalid('malformed part header', '部分头格式错误');
    const field = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    if (field === 'content-disposition') disposition = value;
    else if (field === 'content-type') contentType = value;
    else if (field === 'content-transfer-encoding' && value.toLowerCase() !== 'binary' && value.toLowerCase() !== '8bit') throw invalid(`Content-Transfer-Encoding ${value.slice(0, 20)} is not supported (RFC 7578 §4.7)`, '不支持该传输编码');
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw invalid('each part needs Content-Disposition: form-data', '每个部分须有 Content-Disposition: form-data');
  const p = params(disposition);
  const name = p.get('name');
  if (name === undefined || name === '') throw invalid('a part without a name', '部分缺少 name');
  const filename = p.get('filename');
  return { name, ...(filename !== undefined ? { filename } : {}), ...(contentType !== undefined ? { contentType } : {}) };
}

/** Events of a multipart body; throws FILE_FORM_INVALID (400) on a malformed or truncated body. */
export async function* multipartEvents(source: AsyncIterable<Buffer>, boundary: string): AsyncGenerator<MultipartEvent> {
  const delim = Buffer.from(`\r\n--${boundary}`, 'latin1');
  // A virtual CRLF in front lets the first delimiter (which starts the body) match like the others.
  let buf: Buffer = Buffer.from('\r\n');
  let state: 'preamble' | 'afterDelim' | 'headers' | 'body' | 'epilogue' = 'preamble';
  let parts = 0;
  const input = source[Symbol.asyncIterator]();
  let exhausted = false;
  try {
    for (;;) {
      let progressed = true;
      while (progressed) {
        progressed = false;
        if (state === 'preamble' || state === 'body') {
          const at = buf.indexOf(delim);
          if (at >= 0) {
            if (state === 'body' && at > 0) yield { type: 'data', chunk: buf.subarray(0, at) };
            buf = buf.subarray(at + delim.length);
            state = 'afterDelim';
            progressed = true;
          } else {
            const keep = delim.length - 1;
            if (buf.length > keep) {
              if (state === 'body') yield { type: 'data', chunk: buf.subarray(0, buf.length - keep) };
              buf = buf.subarray(buf.length - keep);
            }
          }
        } else if (state === 'afterDelim') {
          if (buf.length >= 2 && buf[0] === 0x2d && buf[1] === 0x2d) {
            state = 'epilogue';
            buf = Buffer.alloc(0);
          } else {
            const eol = buf.indexOf('\r\n');
            if (eol >= 0) {
              if (!/^[ \t]*$/.test(buf.subarray(0, eol).toString('latin1'))) throw invalid('garbage after a boundary', '分隔符后有多余内容');
              buf = buf.subarray(eol + 2);
              state = 'headers';
              progressed = true;
            } else if (buf.length > 256) {
              throw invalid('garbage after a boundary', '分隔符后有多余内容');
            }
          }
        } else if (state === 'headers') {
          const end = buf.indexOf('\r\n\r\n');
          if (end >= 0) {
            if (++parts > MAX_PARTS) throw invalid(`more than ${MAX_PARTS} parts`, `部分多于 ${MAX_PARTS} 个`);
            yield { type: 'part', ...partHeaders(buf.subarray(0, end).toString('utf8')) };
            buf = buf.subarray(end + 4);
            state = 'body';
            progressed = true;
          } else if (buf.length > MAX_PART_HEADER) {
            throw invalid('part headers too long', '部分头过长');
          }
        }
      }
      if (state === 'epilogue') {
        // Whatever follows the close delimiter is ignored (RFC 2046), but it is read to the end.
        for (let r = await input.next(); !r.done; r = await input.next());
        exhausted = true;
        return;
      }
      const r = await input.next();
      if (r.done) {
        exhausted = true;
        throw invalid('the body ends before the closing boundary (truncated)', '请求体在结束分隔符之前结束（不完整）');
      }
      buf = buf.length === 0 ? r.value : Buffer.concat([buf, r.value]);
    }
  } finally {
    if (!exhausted) await input.return?.();
  }
}
