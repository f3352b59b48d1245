import { closeSync, openSync, readSync } from 'node:fs';

/**
 * The NEEDED entries of a 64-bit little-endian ELF shared library (what `readelf -d` lists), read from
 * its program headers. Used for provider builds the project does not pin, whose needs are not in
 * known-builds.ts; only the headers and the dynamic section are read, never the 230 MB of code.
 * Returns null when the file is not such an ELF file.
 */
export function readNeededLibraries(file: string): string[] | null {
  const fd = openSync(file, 'r');
  try {
    const read = (offset: number, length: number, exact = true): Buffer => {
      const buffer = Buffer.alloc(length);
      const got = readSync(fd, buffer, 0, length, offset);
      if (exact && got !== length) throw new RangeError(`short read at ${offset}`);
      return buffer.subarray(0, got);
    };
    const header = read(0, 64);
    // ELFCLASS64, ELFDATA2LSB: the only layout a linux-x64 provider can have.
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return null;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const loads: { vaddr: number; offset: number; filesz: number }[] = [];
    let dynamic: { offset: number; size: number } | null = null;
    for (let i = 0; i < phnum; i++) {
      const ph = read(phoff + i * phentsize, 56);
      const type = ph.readUInt32LE(0);
      const offset = Number(ph.readBigUInt64LE(8));
      const vaddr = Number(ph.readBigUInt64LE(16));
      const filesz = Number(ph.readBigUInt64LE(32));
      if (type === 1) loads.push({ vaddr, offset, filesz });
      if (type === 2) dynamic = { offset, size: filesz };
    }
    if (dynamic === null) return [];
    const entries = read(dynamic.offset, dynamic.size);
    const needed: number[] = [];
    let strtab = -1;
    for (let at = 0; at + 16 <= entries.length; at += 16) {
      const tag = entries.readBigInt64LE(at);
      const value = Number(entries.readBigUInt64LE(at + 8));
      if (tag === 0n) break;
      if (tag === 1n) needed.push(value);
      if (tag === 5n) strtab = value;
    }
    // DT_STRTAB is an address; the segment that maps it gives its place in the file.
    const segment = loads.find((s) => strtab >= s.vaddr && strtab < s.vaddr + s.filesz);
    if (segment === undefined) return null;
    const strtabOffset = segment.offset + (strtab - segment.vaddr);
    return needed.map((name) => {
      const bytes = read(strtabOffset + name, 256, false);
      const end = bytes.indexOf(0);
      return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
    });
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  } finally {
    closeSync(fd);
  }
}
