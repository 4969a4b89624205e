import { deflateSync } from 'node:zlib';
import { encode } from 'uqr';

/** Pixels per QR module, and the light border (the quiet zone) in modules that scanners need. */
const scale = 6;
const quietZone = 4;

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (crcTable[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** The modules of a QR code for `text` as a black-and-white PNG (8-bit greyscale), made here with no network. */
export function qrCodePng(text: string): Buffer {
  const modules = encode(text, { border: quietZone, ecc: 'M' }).data;
  const side = modules.length * scale;
  const rows: Buffer[] = [];
  for (const row of modules) {
    const line = Buffer.alloc(1 + side, 0xff);
    line[0] = 0; // filter: none
    row.forEach((dark, x) => {
      if (dark) line.fill(0x00, 1 + x * scale, 1 + (x + 1) * scale);
    });
    for (let i = 0; i < scale; i += 1) rows.push(line);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // colour type: greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export function qrCodePngDataUrl(text: string): string {
  return `data:image/png;base64,${qrCodePng(text).toString('base64')}`;
}
