import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Where the dynamic loader looks for a library that a provider names without a path: LD_LIBRARY_PATH,
 * then the ldconfig cache, then the default folders. ldd is not used: it is missing from slim images,
 * and running it on a 230 MB library only to learn what the loader would search is not needed.
 */
export interface LibraryLookup {
  /** Found where the loader would find it. */
  readonly found: ReadonlyMap<string, string>;
  /** Not found by the loader, but present in a CUDA install folder that is not on its search path. */
  readonly offPath: ReadonlyMap<string, string>;
}

const DEFAULT_FOLDERS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/lib/wsl/lib'];

/** Places CUDA and cuDNN installers put libraries without adding them to the loader's path. */
function cudaInstallFolders(): string[] {
  const folders: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/usr/local').filter((name) => /^cuda(-[\d.]+)?$/.test(name));
  } catch {
    // No /usr/local: nothing to suggest.
  }
  for (const name of entries.sort().reverse()) folders.push(`/usr/local/${name}/lib64`, `/usr/local/${name}/lib`, `/usr/local/${name}/targets/x86_64-linux/lib`);
  return folders;
}

/** x86-64 entries of `ldconfig -p`; empty when ldconfig is not there (containers often lack it). */
function ldconfigCache(): Map<string, string> {
  const cache = new Map<string, string>();
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    let text: string;
    try {
      text = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 });
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const match = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)/.exec(line);
      // The loader takes only libraries of the process's own ABI; a 32-bit copy would not load.
      if (match && match[2]!.includes('x86-64') && !cache.has(match[1]!)) cache.set(match[1]!, match[3]!);
    }
    return cache;
  }
  return cache;
}

export function lookUpLibraries(sonames: readonly string[], env: NodeJS.ProcessEnv = process.env): LibraryLookup {
  const fromEnv = (env.LD_LIBRARY_PATH ?? '').split(':').filter((dir) => dir !== '');
  const cache = ldconfigCache();
  const found = new Map<string, string>();
  const offPath = new Map<string, string>();
  for (const soname of sonames) {
    const inEnv = fromEnv.map((dir) => path.join(dir, soname)).find((file) => existsSync(file));
    const hit = inEnv ?? cache.get(soname) ?? DEFAULT_FOLDERS.map((dir) => path.join(dir, soname)).find((file) => existsSync(file));
    if (hit !== undefined) {
      found.set(soname, hit);
      continue;
    }
    const elsewhere = cudaInstallFolders().map((dir) => path.join(dir, soname)).find((file) => existsSync(file));
    if (elsewhere !== undefined) offPath.set(soname, elsewhere);
  }
  return { found, offPath };
}
