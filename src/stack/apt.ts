// Installing PostgreSQL and pgvector with apt, on Debian and Ubuntu machines where we are root.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRoot, onPath, run, StackError, type LogLine } from './run.js';

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** apt work is only attempted where it can work: root, apt-get present, a Debian-family system. */
export const canUseApt = (): boolean =>
  isRoot() && onPath('apt-get') !== undefined && existsSync('/etc/debian_version');

export function manualInstallError(what: string, packages: string): StackError {
  const why = isRoot()
    ? 'this is not a Debian/Ubuntu system with apt-get'
    : 'installing it needs root';
  return new StackError(
    `${what} (${why}): install ${packages} yourself, or set DATABASE_URL to a PostgreSQL that has pgvector, or run \`docker compose up\``,
  );
}

// A fresh machine has empty package lists; one update per process is enough.
let updated = false;
async function aptUpdateOnce(log: LogLine): Promise<void> {
  if (updated) return;
  log('apt-get update…');
  await run('apt-get', ['update'], { env: APT_ENV });
  updated = true;
}

async function aptInstall(packages: string[], log: LogLine): Promise<void> {
  await aptUpdateOnce(log);
  log(`apt-get install ${packages.join(' ')}…`);
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env: APT_ENV });
}

async function aptKnows(pkg: string): Promise<boolean> {
  try {
    return (await run('apt-cache', ['show', pkg])).includes(`Package: ${pkg}`);
  } catch {
    return false;
  }
}

/** Installs the distribution's PostgreSQL server, preferring 15 where the distribution has it. */
export async function aptInstallPostgres(log: LogLine): Promise<void> {
  if (!canUseApt())
    throw manualInstallError(
      'PostgreSQL ≥ 15 is not installed',
      'postgresql-15 (or newer) and pgvector ≥ 0.7',
    );
  await aptUpdateOnce(log);
  await aptInstall([(await aptKnows('postgresql-15')) ? 'postgresql-15' : 'postgresql'], log);
}

/**
 * Builds pgvector from Debian trixie's source package: bookworm's own pgvector is 0.4, too old for
 * halfvec and HNSW. Only a deb-src entry is added, and only for this build, so no trixie binary
 * package can ever be installed by it.
 */
export async function aptBuildPgvector(
  pgConfig: string,
  major: number,
  log: LogLine,
): Promise<void> {
  if (!canUseApt()) {
    throw manualInstallError(
      `pgvector ≥ 0.7 is not installed for PostgreSQL ${major}`,
      'pgvector (https://github.com/pgvector/pgvector#installation)',
    );
  }
  const needed = [`postgresql-server-dev-${major}`, 'build-essential', 'dpkg-dev'];
  if (!existsSync(DEBIAN_KEYRING)) needed.push('debian-archive-keyring');
  await aptInstall(needed, log);

  const build = mkdtempSync(join(tmpdir(), 'embedsync-pgvector-'));
  try {
    const sources = join(build, 'trixie-src.sources');
    writeFileSync(
      sources,
      [
        'Types: deb-src',
        'URIs: http://deb.debian.org/debian',
        'Suites: trixie',
        'Components: main',
        `Signed-By: ${DEBIAN_KEYRING}`,
        '',
      ].join('\n'),
    );
    // Only this source list, and keep the lists of the machine's own sources.
    const only = [
      '-o',
      `Dir::Etc::sourcelist=${sources}`,
      '-o',
      'Dir::Etc::sourceparts=-',
      '-o',
      'APT::Get::List-Cleanup=0',
    ];
    log('fetching the pgvector source package from Debian trixie…');
    await run('apt-get', [...only, 'update'], { env: APT_ENV });
    await run('apt-get', [...only, 'source', '--download-only', 'pgvector'], {
      cwd: build,
      env: APT_ENV,
    });
    const dsc = readdirSync(build).find((f) => /^pgvector_.*\.dsc$/.test(f));
    if (!dsc) throw new StackError(`apt-get source pgvector downloaded no .dsc into ${build}`);
    await run('dpkg-source', ['--no-check', '-x', dsc, 'src'], { cwd: build });
    const src = join(build, 'src');
    log(`building pgvector (${dsc.replace(/^pgvector_|\.dsc$/g, '')}) for PostgreSQL ${major}…`);
    await run('make', ['-j2', `PG_CONFIG=${pgConfig}`], { cwd: src });
    await run('make', ['install', `PG_CONFIG=${pgConfig}`], { cwd: src });
    log('pgvector installed');
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}
