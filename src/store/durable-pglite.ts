import fs from 'node:fs';
import path from 'node:path';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

/**
 * PGlite made power-loss safe. Stock PGlite starts PostgreSQL with fsync off, and the file layer of its
 * WebAssembly build has no fsync at all, so a COMMIT reaches the page cache but not the disk. Here the file layer
 * gets a real fsync (Node's `fsyncSync`/`fdatasyncSync`), and PostgreSQL runs with `fsync=on` and
 * `wal_sync_method=fsync`, so that each COMMIT returns after its WAL is on stable storage and checkpoints flush
 * in PostgreSQL's own order. This reaches into Emscripten internals (`NODEFS.stream_ops`), so the version of
 * PGlite is pinned and a self-test at open refuses to run if commits stop reaching fsync.
 */
const walSegment = /^[0-9A-F]{24}$/;
/** Emscripten's EIO: PostgreSQL PANICs on it, as it must after a failed fsync. */
const emscriptenEio = 29;

interface EmscriptenNode {
  mode: number;
}
interface EmscriptenModule {
  NODEFS?: {
    stream_ops?: Record<string, unknown>;
    realPath?: (node: EmscriptenNode) => string;
  };
  FS: { isDir(mode: number): boolean };
}
interface EmscriptenStream {
  node: EmscriptenNode;
  nfd?: number | null;
}

function fsyncPath(file: string, isDir: boolean): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if (isDir && ['EISDIR', 'EPERM', 'EACCES'].includes((error as NodeJS.ErrnoException).code ?? '')) return;
    throw error;
  }
  try {
    fs.fsyncSync(fd);
  } catch (error) {
    if (!(isDir && ['EISDIR', 'EPERM', 'EACCES', 'EBADF', 'EINVAL'].includes((error as NodeJS.ErrnoException).code ?? ''))) throw error;
  } finally {
    fs.closeSync(fd);
  }
}

/** Flushes every file and directory under `dir` (a freshly created cluster is written without any flush). */
export function fsyncTree(dir: string): void {
  const stat = fs.lstatSync(dir);
  if (stat.isDirectory()) for (const entry of fs.readdirSync(dir)) fsyncTree(path.join(dir, entry));
  if (stat.isDirectory() || stat.isFile()) fsyncPath(dir, stat.isDirectory());
}

export class FsyncNodeFS extends NodeFS {
  fsyncCalls = 0;
  fatal: Error | undefined;

  override async init(pg: PGlite, opts: Parameters<NodeFS['init']>[1]) {
    const result = await super.init(pg, opts);
    const preRun = (result.emscriptenOpts.preRun ?? []) as Array<(mod: EmscriptenModule) => void>;
    preRun.push((mod) => this.#patch(mod));
    result.emscriptenOpts.preRun = preRun as typeof result.emscriptenOpts.preRun;
    return result;
  }

  #patch(mod: EmscriptenModule): void {
    const nodefs = mod.NODEFS;
    const realPath = nodefs?.realPath;
    if (nodefs?.stream_ops === undefined || realPath === undefined) {
      throw new Error('PGlite internals changed (NODEFS.stream_ops); the durability patch cannot be applied');
    }
    nodefs.stream_ops.fsync = (stream: EmscriptenStream) => {
      const file = realPath(stream.node);
      const isDir = mod.FS.isDir(stream.node.mode);
      try {
        if (stream.nfd !== undefined && stream.nfd !== null) {
          // WAL segments are preallocated, so their data is all that changes: fdatasync, as PostgreSQL on Linux.
          const isWal = !isDir && walSegment.test(path.basename(file)) && path.basename(path.dirname(file)) === 'pg_wal';
          if (isWal) fs.fdatasyncSync(stream.nfd);
          else fs.fsyncSync(stream.nfd);
        } else {
          fsyncPath(file, isDir);
        }
        this.fsyncCalls += 1;
        return 0;
      } catch (error) {
        if (isDir && ['EISDIR', 'EPERM', 'EACCES', 'EBADF'].includes((error as NodeJS.ErrnoException).code ?? '')) return 0;
        this.fatal ??= error as Error;
        return emscriptenEio;
      }
    };
  }
}

function durableStartParams(extra: string[]): string[] {
  return [
    ...PGlite.defaultStartParams.filter((param) => param !== '-F'),
    ...extra,
    '-c', 'fsync=on',
    // Not fdatasync: the WebAssembly libc's fdatasync is a no-op. Not open_sync: it aborts.
    '-c', 'wal_sync_method=fsync',
    '-c', 'full_page_writes=on',
    '-c', 'synchronous_commit=on',
  ];
}

/**
 * A new cluster is created aside, then renamed into place, so a crash never leaves half of one (flushed first when
 * `flush`). PGlite creates its directory 0755 and its files 0666 whatever the umask, so it works inside a
 * directory only the owner can enter (`mkdtemp`'s 0700), and the cluster's own directory is made 0700 before it
 * moves next to anything another local user can see: even when the home directory is open to others, no one else
 * can ever reach the files, not even while they are created.
 */
export async function createClusterPrivately(dataDir: string, flush: boolean): Promise<void> {
  const parent = path.dirname(dataDir);
  const prefix = `${path.basename(dataDir)}.initdb-`;
  // What a start killed while creating left behind (the caller holds the data directory's lock).
  for (const entry of fs.readdirSync(parent)) if (entry.startsWith(prefix)) fs.rmSync(path.join(parent, entry), { recursive: true, force: true });
  const aside = fs.mkdtempSync(path.join(parent, prefix));
  const staging = path.join(aside, 'data');
  const init = await PGlite.create(staging);
  await init.close();
  fs.chmodSync(staging, 0o700);
  if (flush) fsyncTree(staging);
  if (fs.existsSync(dataDir)) {
    if (fs.readdirSync(dataDir).length > 0) throw new Error(`${dataDir} exists, is not empty and is not a database`);
    fs.rmdirSync(dataDir);
  }
  fs.renameSync(staging, dataDir);
  fs.rmdirSync(aside);
  if (flush) fsyncPath(parent, true);
}

/** Whether `dataDir` holds a database cluster already. */
export function hasCluster(dataDir: string): boolean {
  return fs.existsSync(path.join(dataDir, 'PG_VERSION'));
}

export interface DurablePGlite {
  pglite: PGlite;
  vfs: FsyncNodeFS;
}

/** Opens (creating if needed) an embedded database whose COMMITs are on stable storage when they return. */
export async function openDurablePGlite(dataDir: string, options: PGliteOptions = {}, startParams: string[] = []): Promise<DurablePGlite> {
  if (!hasCluster(dataDir)) await createClusterPrivately(dataDir, true);
  const vfs = new FsyncNodeFS(dataDir);
  const pglite = await PGlite.create({ ...options, fs: vfs, startParams: durableStartParams(startParams) });
  const settings = await pglite.query<{ fsync: string; method: string }>(
    "SELECT current_setting('fsync') AS fsync, current_setting('wal_sync_method') AS method",
  );
  const before = vfs.fsyncCalls;
  // A WAL-logged change: its COMMIT must flush the WAL through the patched fsync.
  await pglite.exec('CREATE TEMP TABLE coffer_durability_probe (x int); DROP TABLE coffer_durability_probe;');
  const row = settings.rows[0];
  if (row?.fsync !== 'on' || row.method !== 'fsync' || vfs.fsyncCalls === before) {
    await pglite.close();
    throw new Error(`embedded database durability self-test failed (fsync=${row?.fsync}, wal_sync_method=${row?.method}, flushes=${vfs.fsyncCalls - before})`);
  }
  return { pglite, vfs };
}
