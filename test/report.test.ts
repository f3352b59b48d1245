import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { encodePng, toRgba8, toRgbaFrames, type RgbaImage } from '../report/image-encoding.js';
import { bestFirst, renderGrid } from '../report/grid.js';
import { encodeGif, sampleToGif } from '../report/gif.js';
import { encodeIPcmH264, encodeMp4, nalUnit, sampleToMp4 } from '../report/mp4.js';
import { escapeHtml, renderHtmlReport } from '../report/html-report.js';
import { writeRunOutputs, writeSummaryReport } from '../report/write-outputs.js';
import type { PromptReport, SampleData } from '../report/report-data.js';

// ---------------------------------------------------------------- fixtures

/** Deterministic pseudo-random values in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomSample(shape: number[], seed: number): SampleData {
  const n = shape.reduce((a, b) => a * b, 1);
  const next = lcg(seed);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = next();
  return { data, shape };
}

/** An image [3, H, W] of one colour. */
function solidImage(h: number, w: number, rgb: [number, number, number]): SampleData {
  const data = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) data.fill(rgb[c]! / 255, c * h * w, (c + 1) * h * w);
  return { data, shape: [3, h, w] };
}

/** A video [F, 3, H, W] whose frame f is one colour. */
function solidVideo(h: number, w: number, colours: [number, number, number][]): SampleData {
  const frames = colours.map((c) => solidImage(h, w, c).data);
  const data = new Float32Array(frames.length * 3 * h * w);
  frames.forEach((f, i) => data.set(f, i * f.length));
  return { data, shape: [colours.length, 3, h, w] };
}

const byte = (v: number): number => Math.round(Math.min(1, Math.max(0, v)) * 255);

function pixel(img: { width: number; data: Uint8Array }, x: number, y: number): number[] {
  const o = (y * img.width + x) * 4;
  return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!, img.data[o + 3]!];
}

// ---------------------------------------------------------------- PNG

describe('image encoding', () => {
  it('toRgba8 upscales by nearest neighbour and the PNG decodes back to the same pixels', () => {
    const h = 2;
    const w = 3;
    const s = randomSample([3, h, w], 1);
    s.data[0] = -0.5; // clamps to 0
    s.data[1] = 1.7; // clamps to 255
    const rgba = toRgba8(s.data, [3, h, w], 4);
    assert.equal(rgba.width, 12);
    assert.equal(rgba.height, 8);
    const png = PNG.sync.read(encodePng(rgba));
    assert.equal(png.width, 12);
    assert.equal(png.height, 8);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 12; x++) {
        const sx = Math.floor(x / 4);
        const sy = Math.floor(y / 4);
        const expected = [0, 1, 2].map((c) => byte(s.data[c * h * w + sy * w + sx]!)).concat(255);
        assert.deepEqual(pixel({ width: 12, data: png.data }, x, y), expected, `pixel ${x},${y}`);
      }
    }
    assert.deepEqual(pixel(rgba, 0, 0).slice(0, 1), [0]);
    assert.deepEqual(pixel(rgba, 4, 0).slice(0, 1), [255]);
  });

  it('grey [1, H, W] images replicate the channel; videos give one image per frame', () => {
    const grey = { data: new Float32Array([0, 0.5, 1, 0.25]), shape: [1, 2, 2] };
    const img = toRgba8(grey.data, [1, 2, 2], 1);
    assert.deepEqual(pixel(img, 1, 0), [128, 128, 128, 255]);
    assert.deepEqual(pixel(img, 1, 1), [64, 64, 64, 255]);
    const video = solidVideo(2, 2, [[255, 0, 0], [0, 255, 0], [0, 0, 255]]);
    const frames = toRgba8(video.data, [3, 3, 2, 2], 2);
    assert.equal(frames.length, 3);
    assert.deepEqual(pixel(frames[1]!, 3, 3), [0, 255, 0, 255]);
    assert.throws(() => toRgba8(new Float32Array(5), [3, 2, 2], 1), /values/);
  });
});

// ---------------------------------------------------------------- grid

describe('grid', () => {
  const colours: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]];

  it('lays images out row-major with a separator, in the given order', () => {
    const samples = colours.map((c) => solidImage(4, 4, c));
    const grid = renderGrid(samples, { scale: 2, gap: 2, background: [9, 9, 9] });
    assert.equal(grid.columns, 3);
    assert.equal(grid.rows, 2);
    assert.equal(grid.width, 3 * 8 + 2 * 2);
    assert.equal(grid.height, 2 * 8 + 2);
    colours.forEach((c, i) => {
      const cell = grid.cells[i]!;
      assert.deepEqual(cell, { x: (i % 3) * 10, y: Math.floor(i / 3) * 10 });
      assert.deepEqual(pixel(grid, cell.x, cell.y), [...c, 255]);
      assert.deepEqual(pixel(grid, cell.x + 7, cell.y + 7), [...c, 255]);
    });
    assert.deepEqual(pixel(grid, 8, 0), [9, 9, 9, 255]); // vertical separator
    assert.deepEqual(pixel(grid, 0, 9), [9, 9, 9, 255]); // horizontal separator
    assert.deepEqual(pixel(grid, grid.width - 1, grid.height - 1), [9, 9, 9, 255]); // empty 6th cell
    const png = PNG.sync.read(encodePng(grid));
    assert.equal(png.width, grid.width);
    assert.equal(png.height, grid.height);
  });

  it('bestFirst orders a population by reward, ties in input order', () => {
    const pop = [{ id: 'a', reward: 0.1 }, { id: 'b', reward: 0.9 }, { id: 'c', reward: 0.5 }, { id: 'd', reward: 0.9 }];
    assert.deepEqual(bestFirst(pop).map((m) => m.id), ['b', 'd', 'c', 'a']);
  });

  it('videos get one row of frames per sample', () => {
    const v0 = solidVideo(4, 4, colours.slice(0, 3));
    const v1 = solidVideo(4, 4, colours.slice(2, 5));
    const grid = renderGrid([v0, v1], { scale: 1, gap: 1 });
    assert.equal(grid.rows, 2);
    assert.equal(grid.columns, 3);
    assert.equal(grid.width, 3 * 4 + 2);
    assert.equal(grid.height, 2 * 4 + 1);
    for (let f = 0; f < 3; f++) {
      assert.deepEqual(pixel(grid, f * 5, 0), [...colours[f]!, 255]);
      assert.deepEqual(pixel(grid, f * 5 + 3, 5 + 3), [...colours[f + 2]!, 255]);
    }
    const firstFrames = renderGrid([v0, v1], { scale: 1, gap: 1, video: 'first-frame' });
    assert.equal(firstFrames.width, 2 * 4 + 1);
    assert.deepEqual(pixel(firstFrames, 5, 0), [...colours[2]!, 255]);
  });
});

// ---------------------------------------------------------------- GIF

interface GifInfo {
  width: number;
  height: number;
  frames: { width: number; height: number; delayCs: number; localPalette: boolean }[];
  loopCount: number | null;
  trailer: boolean;
}

/** Walks the GIF block structure (header, LSD, colour tables, extensions, images, trailer). */
function parseGif(b: Uint8Array): GifInfo {
  assert.equal(Buffer.from(b.subarray(0, 6)).toString('latin1'), 'GIF89a');
  const u16 = (o: number): number => b[o]! | (b[o + 1]! << 8);
  const info: GifInfo = { width: u16(6), height: u16(8), frames: [], loopCount: null, trailer: false };
  let o = 13;
  const packed = b[10]!;
  if (packed & 0x80) o += 3 * 2 ** ((packed & 7) + 1);
  const skipSubBlocks = (p: number): number => {
    while (b[p]! !== 0) p += b[p]! + 1;
    return p + 1;
  };
  let delay = 0;
  while (o < b.length) {
    const id = b[o]!;
    if (id === 0x3b) {
      info.trailer = o === b.length - 1;
      break;
    } else if (id === 0x21) {
      const label = b[o + 1]!;
      if (label === 0xf9) delay = u16(o + 4);
      if (label === 0xff && Buffer.from(b.subarray(o + 3, o + 14)).toString('latin1') === 'NETSCAPE2.0') {
        assert.equal(b[o + 15], 1);
        info.loopCount = u16(o + 16);
      }
      o = skipSubBlocks(o + 2);
    } else if (id === 0x2c) {
      const p = b[o + 9]!;
      info.frames.push({ width: u16(o + 5), height: u16(o + 7), delayCs: delay, localPalette: (p & 0x80) !== 0 });
      o += 10;
      if (p & 0x80) o += 3 * 2 ** ((p & 7) + 1);
      o = skipSubBlocks(o + 1); // LZW minimum code size, then image data
    } else {
      assert.fail(`unexpected GIF block 0x${id.toString(16)} at ${o}`);
    }
  }
  return info;
}

describe('gif', () => {
  it('an animated, looping GIF89a with one image per video frame', () => {
    const video = randomSample([5, 3, 8, 6], 3);
    const info = parseGif(sampleToGif(video, { scale: 4 }));
    assert.equal(info.width, 24);
    assert.equal(info.height, 32);
    assert.equal(info.frames.length, 5);
    assert.equal(info.loopCount, 0); // forever
    assert.ok(info.trailer);
    for (const f of info.frames) {
      assert.deepEqual([f.width, f.height], [24, 32]);
      assert.ok(Math.abs(f.delayCs * 10 - 125) <= 5, `delay ${f.delayCs * 10} ms`);
    }
  });

  it('encodeGif takes RGBA frames directly', () => {
    const frames: RgbaImage[] = toRgbaFrames(solidVideo(4, 4, [[1, 2, 3], [200, 100, 0]]).data, [2, 3, 4, 4], 1);
    for (const palette of ['per-frame', 'global'] as const) {
      const info = parseGif(encodeGif(frames, { delayMs: 200, palette }));
      assert.equal(info.frames.length, 2);
      assert.equal(info.frames[0]!.delayCs, 20);
      assert.equal(info.frames[1]!.localPalette, palette === 'per-frame');
    }
  });
});

// ---------------------------------------------------------------- MP4 / H.264

interface Box {
  type: string;
  start: number;
  /** Payload start (after the header). */
  body: number;
  end: number;
}

function readBoxes(b: Uint8Array, start: number, end: number): Box[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const boxes: Box[] = [];
  let o = start;
  while (o < end) {
    let size = view.getUint32(o);
    const type = Buffer.from(b.subarray(o + 4, o + 8)).toString('latin1');
    let body = o + 8;
    if (size === 1) {
      size = Number(view.getBigUint64(o + 8));
      body = o + 16;
    } else if (size === 0) {
      size = end - o;
    }
    assert.ok(size >= 8 && o + size <= end, `box ${type} at ${o} has bad size ${size}`);
    boxes.push({ type, start: o, body, end: o + size });
    o += size;
  }
  assert.equal(o, end, 'boxes tile their parent exactly');
  return boxes;
}

function child(b: Uint8Array, parent: Box, type: string, offset = 0): Box {
  const found = readBoxes(b, parent.body + offset, parent.end).find((x) => x.type === type);
  assert.ok(found, `${parent.type} has no ${type}`);
  return found;
}

/** Removes emulation prevention bytes (00 00 03 -> 00 00). */
function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const out: number[] = [];
  let zeros = 0;
  for (const x of nal) {
    if (zeros >= 2 && x === 3) {
      zeros = 0;
      continue;
    }
    out.push(x);
    zeros = x === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

class BitReader {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}
  bit(): number {
    const v = (this.b[this.pos >> 3]! >> (7 - (this.pos & 7))) & 1;
    this.pos += 1;
    return v;
  }
  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) zeros += 1;
    return 2 ** zeros - 1 + this.u(zeros);
  }
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -k / 2;
  }
  byte(): number {
    assert.equal(this.pos & 7, 0, 'PCM samples are byte aligned');
    const v = this.b[this.pos >> 3]!;
    this.pos += 8;
    return v;
  }
  get bitsLeft(): number {
    return this.b.length * 8 - this.pos;
  }
}

interface DecodedFrame {
  width: number;
  height: number;
  y: Uint8Array;
  cb: Uint8Array;
  cr: Uint8Array;
}

/** Parses the SPS we write and decodes the IDR I_PCM slices of each AVCC sample. */
function decodeIPcm(avcC: Uint8Array, samples: Uint8Array[]): { profile: number; level: number; frames: DecodedFrame[] } {
  assert.equal(avcC[0], 1);
  assert.equal(avcC[4]! & 3, 3, 'lengthSizeMinusOne = 3');
  assert.equal(avcC[5]! & 31, 1, 'one SPS');
  const spsLen = (avcC[6]! << 8) | avcC[7]!;
  const sps = avcC.subarray(8, 8 + spsLen);
  assert.equal(avcC[8 + spsLen], 1, 'one PPS');
  const ppsLen = (avcC[9 + spsLen]! << 8) | avcC[10 + spsLen]!;
  const pps = avcC.subarray(11 + spsLen, 11 + spsLen + ppsLen);
  assert.equal(sps[0]! & 31, 7);
  assert.equal(pps[0]! & 31, 8);

  const s = new BitReader(unescapeRbsp(sps.subarray(1)));
  const profile = s.u(8);
  s.u(8); // constraint flags
  const level = s.u(8);
  assert.equal(s.ue(), 0); // sps id
  const log2MaxFrameNum = s.ue() + 4;
  assert.equal(s.ue(), 2, 'pic_order_cnt_type 2');
  s.ue(); // max_num_ref_frames
  s.u(1);
  const mbW = s.ue() + 1;
  const mbH = s.ue() + 1;
  assert.equal(s.u(1), 1, 'frame_mbs_only');
  s.u(1);
  let crop = [0, 0, 0, 0];
  if (s.u(1)) crop = [s.ue(), s.ue(), s.ue(), s.ue()];
  const codedW = mbW * 16;
  const codedH = mbH * 16;
  const width = codedW - 2 * (crop[0]! + crop[1]!);
  const height = codedH - 2 * (crop[2]! + crop[3]!);

  const p = new BitReader(unescapeRbsp(pps.subarray(1)));
  p.ue();
  p.ue();
  assert.equal(p.u(1), 0, 'CAVLC');
  p.u(1);
  assert.equal(p.ue(), 0, 'one slice group');
  p.ue();
  p.ue();
  p.u(1);
  p.u(2);
  p.se();
  p.se();
  p.se();
  const deblockingControl = p.u(1);

  const frames = samples.map((sample, index) => {
    // AVCC: 4-byte lengths.
    const nals: Uint8Array[] = [];
    for (let o = 0; o < sample.length;) {
      const len = new DataView(sample.buffer, sample.byteOffset + o, 4).getUint32(0);
      nals.push(sample.subarray(o + 4, o + 4 + len));
      o += 4 + len;
    }
    assert.equal(nals.length, 1, 'one slice NAL per access unit');
    const nal = nals[0]!;
    assert.equal(nal[0]! & 31, 5, 'IDR slice');
    assert.notEqual(nal[0]! >> 5, 0, 'nal_ref_idc != 0');
    const r = new BitReader(unescapeRbsp(nal.subarray(1)));
    assert.equal(r.ue(), 0, 'first_mb_in_slice');
    assert.equal(r.ue() % 5, 2, 'I slice');
    r.ue();
    assert.equal(r.u(log2MaxFrameNum), 0, 'frame_num');
    assert.equal(r.ue(), index % 2, 'idr_pic_id alternates');
    r.u(1);
    r.u(1);
    r.se();
    if (deblockingControl) assert.equal(r.ue(), 1);
    const y = new Uint8Array(codedW * codedH);
    const cb = new Uint8Array((codedW / 2) * (codedH / 2));
    const cr = new Uint8Array(cb.length);
    for (let my = 0; my < mbH; my++) {
      for (let mx = 0; mx < mbW; mx++) {
        assert.equal(r.ue(), 25, 'mb_type I_PCM');
        while (r.pos & 7) assert.equal(r.bit(), 0, 'pcm_alignment_zero_bit');
        for (let i = 0; i < 256; i++) y[(my * 16 + (i >> 4)) * codedW + mx * 16 + (i & 15)] = r.byte();
        for (const plane of [cb, cr]) {
          for (let i = 0; i < 64; i++) plane[(my * 8 + (i >> 3)) * (codedW / 2) + mx * 8 + (i & 7)] = r.byte();
        }
      }
    }
    assert.equal(r.bit(), 1, 'rbsp_stop_one_bit');
    while (r.bitsLeft > 0) assert.equal(r.bit(), 0);
    // Crop to the display window (left/top offsets are 0 here).
    const out: DecodedFrame = { width, height, y: new Uint8Array(width * height), cb: new Uint8Array((width / 2) * (height / 2)), cr: new Uint8Array((width / 2) * (height / 2)) };
    for (let j = 0; j < height; j++) out.y.set(y.subarray(j * codedW, j * codedW + width), j * width);
    for (let j = 0; j < height / 2; j++) {
      out.cb.set(cb.subarray((j * codedW) / 2, (j * codedW) / 2 + width / 2), (j * width) / 2);
      out.cr.set(cr.subarray((j * codedW) / 2, (j * codedW) / 2 + width / 2), (j * width) / 2);
    }
    return out;
  });
  return { profile, level, frames };
}

/** Demuxes our MP4: checks the box tree and returns avcC plus the samples in order. */
function demuxMp4(file: Uint8Array): { avcC: Uint8Array; samples: Uint8Array[]; width: number; height: number; timescale: number; durations: number[] } {
  const top = readBoxes(file, 0, file.length);
  assert.equal(top[0]!.type, 'ftyp');
  const types = top.map((x) => x.type);
  assert.ok(types.includes('moov') && types.includes('mdat'));
  assert.ok(types.indexOf('moov') < types.indexOf('mdat'), 'fast start: moov before mdat');
  const moov = top.find((x) => x.type === 'moov')!;
  const trak = child(file, moov, 'trak');
  const tkhd = child(file, trak, 'tkhd');
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const tkhdVersion = file[tkhd.body]!;
  const dims = tkhd.body + (tkhdVersion === 1 ? 88 : 76);
  const width = view.getUint32(dims) / 65536;
  const height = view.getUint32(dims + 4) / 65536;
  const mdia = child(file, trak, 'mdia');
  const mdhd = child(file, mdia, 'mdhd');
  const timescale = view.getUint32(mdhd.body + (file[mdhd.body] === 1 ? 20 : 12));
  const hdlr = child(file, mdia, 'hdlr');
  assert.equal(Buffer.from(file.subarray(hdlr.body + 8, hdlr.body + 12)).toString('latin1'), 'vide');
  const stblBox = child(file, child(file, mdia, 'minf'), 'stbl');
  const stsd = child(file, stblBox, 'stsd');
  assert.equal(view.getUint32(stsd.body + 4), 1, 'one sample entry');
  const avc1 = readBoxes(file, stsd.body + 8, stsd.end)[0]!;
  assert.equal(avc1.type, 'avc1');
  assert.equal(view.getUint16(avc1.body + 24), width);
  assert.equal(view.getUint16(avc1.body + 26), height);
  const avcCBox = child(file, avc1, 'avcC', 78); // VisualSampleEntry fields are 78 bytes
  const avcC = file.slice(avcCBox.body, avcCBox.end);

  const stsz = child(file, stblBox, 'stsz');
  const fixed = view.getUint32(stsz.body + 4);
  const count = view.getUint32(stsz.body + 8);
  const sizes = Array.from({ length: count }, (_, i) => (fixed !== 0 ? fixed : view.getUint32(stsz.body + 12 + 4 * i)));
  const stboxes = readBoxes(file, stblBox.body, stblBox.end);
  const co = stboxes.find((x) => x.type === 'stco' || x.type === 'co64')!;
  assert.ok(co, 'chunk offsets');
  const chunkCount = view.getUint32(co.body + 4);
  const chunkOffsets = Array.from({ length: chunkCount }, (_, i) =>
    co.type === 'stco' ? view.getUint32(co.body + 8 + 4 * i) : Number(view.getBigUint64(co.body + 8 + 8 * i)));
  const stsc = child(file, stblBox, 'stsc');
  const runs = Array.from({ length: view.getUint32(stsc.body + 4) }, (_, i) => ({
    first: view.getUint32(stsc.body + 8 + 12 * i),
    perChunk: view.getUint32(stsc.body + 12 + 12 * i),
  }));
  const samples: Uint8Array[] = [];
  let next = 0;
  chunkOffsets.forEach((offset, c) => {
    const run = [...runs].reverse().find((x) => x.first <= c + 1)!;
    let o = offset;
    for (let k = 0; k < run.perChunk; k++) {
      samples.push(file.slice(o, o + sizes[next]!));
      o += sizes[next]!;
      next += 1;
    }
  });
  assert.equal(samples.length, count);
  const mdat = top.find((x) => x.type === 'mdat')!;
  for (const off of chunkOffsets) assert.ok(off >= mdat.body && off < mdat.end, 'chunks lie in mdat');
  const stts = child(file, stblBox, 'stts');
  const durations: number[] = [];
  for (let i = 0; i < view.getUint32(stts.body + 4); i++) {
    const n = view.getUint32(stts.body + 8 + 8 * i);
    const d = view.getUint32(stts.body + 12 + 8 * i);
    for (let k = 0; k < n; k++) durations.push(d);
  }
  return { avcC, samples, width, height, timescale, durations };
}

/** BT.601 limited range, computed independently of the encoder. */
function expectedYuv(rgba: RgbaImage): DecodedFrame {
  const { width, height, data } = rgba;
  const y = new Uint8Array(width * height);
  const cb = new Uint8Array((width / 2) * (height / 2));
  const cr = new Uint8Array(cb.length);
  for (let i = 0; i < width * height; i++) {
    const [r, g, b] = [data[4 * i]! / 255, data[4 * i + 1]! / 255, data[4 * i + 2]! / 255];
    y[i] = Math.round(16 + 65.481 * r + 128.553 * g + 24.966 * b);
  }
  for (let j = 0; j < height / 2; j++) {
    for (let i = 0; i < width / 2; i++) {
      let [r, g, b] = [0, 0, 0];
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const o = ((2 * j + dy!) * width + 2 * i + dx!) * 4;
        r += data[o]! / 1020;
        g += data[o + 1]! / 1020;
        b += data[o + 2]! / 1020;
      }
      cb[j * (width / 2) + i] = Math.round(128 - 37.797 * r - 74.203 * g + 112 * b);
      cr[j * (width / 2) + i] = Math.round(128 + 112 * r - 93.786 * g - 18.214 * b);
    }
  }
  return { width, height, y, cb, cr };
}

function yuvToRgb(yy: number, cb: number, cr: number): number[] {
  const y = (yy - 16) * (255 / 219);
  const u = (cb - 128) * (255 / 224);
  const v = (cr - 128) * (255 / 224);
  return [y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u].map((c) => Math.min(255, Math.max(0, Math.round(c))));
}

describe('mp4 (H.264 I_PCM)', () => {
  it('nalUnit inserts emulation prevention bytes', () => {
    assert.deepEqual(Array.from(nalUnit(3, 5, Uint8Array.from([0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 3]))),
      [0x65, 0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 4, 0, 0, 3, 3]);
  });

  it('muxes a valid MP4 whose I_PCM frames decode back to the input pixels', () => {
    // 10x6 video upscaled x2 = 20x12: padded to 32x16 and cropped back in the SPS.
    const fps = 8;
    const video = randomSample([3, 3, 6, 10], 11);
    const file = sampleToMp4(video, { scale: 2, fps });
    const mp4 = demuxMp4(file);
    assert.deepEqual([mp4.width, mp4.height], [20, 12]);
    assert.equal(mp4.samples.length, 3);
    for (const d of mp4.durations) assert.ok(Math.abs(d / mp4.timescale - 1 / fps) < 1e-3);
    assert.equal(mp4.avcC[1], 66, 'Baseline profile');

    const { profile, frames } = decodeIPcm(mp4.avcC, mp4.samples);
    assert.equal(profile, 66);
    const inputs = toRgbaFrames(video.data, video.shape, 2);
    frames.forEach((f, i) => {
      assert.deepEqual([f.width, f.height], [20, 12]);
      const exp = expectedYuv(inputs[i]!);
      for (const plane of ['y', 'cb', 'cr'] as const) {
        for (let k = 0; k < exp[plane].length; k++) {
          assert.ok(Math.abs(f[plane][k]! - exp[plane][k]!) <= 1, `frame ${i} ${plane}[${k}]: ${f[plane][k]} vs ${exp[plane][k]}`);
        }
      }
      // Back to RGB: each 2x2 block is one source pixel (scale 2), so only YUV rounding remains.
      let maxErr = 0;
      for (let yy = 0; yy < 12; yy++) {
        for (let xx = 0; xx < 20; xx++) {
          const c = (yy >> 1) * 10 + (xx >> 1);
          const rgb = yuvToRgb(f.y[yy * 20 + xx]!, f.cb[c]!, f.cr[c]!);
          const src = pixel(inputs[i]!, xx, yy);
          for (let ch = 0; ch < 3; ch++) maxErr = Math.max(maxErr, Math.abs(rgb[ch]! - src[ch]!));
        }
      }
      assert.ok(maxErr <= 3, `frame ${i}: RGB round trip error ${maxErr}`);
    });
  });

  it('sizes that are multiples of 16 need no cropping; odd sizes round up to even', () => {
    const even = encodeIPcmH264(toRgbaFrames(randomSample([1, 3, 16, 32], 5).data, [1, 3, 16, 32], 1));
    assert.deepEqual([even.width, even.height, even.codedWidth, even.codedHeight], [32, 16, 32, 16]);
    assert.match(even.codec, /^avc1\.42E0[0-9A-F]{2}$/);
    const odd = encodeMp4(toRgbaFrames(randomSample([1, 3, 5, 7], 6).data, [1, 3, 5, 7], 1));
    const mp4 = demuxMp4(odd);
    assert.deepEqual([mp4.width, mp4.height], [8, 6]);
    const { frames } = decodeIPcm(mp4.avcC, mp4.samples);
    assert.deepEqual([frames[0]!.width, frames[0]!.height], [8, 6]);
  });
});

// ---------------------------------------------------------------- HTML

function promptReport(prompt: string | null, video: boolean, seed: number): PromptReport {
  const shape = video ? [4, 3, 8, 8] : [3, 8, 8];
  const sample = (k: number): SampleData => randomSample(shape, seed * 100 + k);
  return {
    prompt,
    method: 'evosearch',
    model: video ? 'tiny-video' : 'tiny-image',
    budgetNfe: 1000,
    spent: { nfe: 960, forwardPasses: 120, decodes: 48, rewardCalls: 48 },
    wallMs: 12_345,
    bytesMoved: 5 * 1024 * 1024,
    best: { reward: 0.91, metrics: { clip: 0.31, aesthetic: 5.2 }, sample: sample(0) },
    rounds: [
      { label: 'init', generation: 0, bestReward: 0.5, populationMean: 0.3, populationMax: 0.5 },
      { label: 'gen 1', generation: 1, bestReward: 0.7, populationMean: null, populationMax: 0.7 },
      { label: 'gen 2', generation: 2, bestReward: 0.8, populationMean: 0.55, populationMax: 0.8 },
      { label: 'gen 3', generation: 3, bestReward: 0.91, populationMean: 0.6, populationMax: 0.91 },
    ],
    population: [0.4, 0.91, 0.7].map((reward, i) => ({ id: `p${i}`, reward, sample: sample(i + 1) })),
    lineage: [
      { id: 'x0', op: 'init', generation: 0, step: 50, reward: null, thumbnail: sample(10) },
      { id: 'x1', op: 'mutate-xT', generation: 1, step: 50, reward: 0.7, thumbnail: null },
      { id: 'x2', op: 'mutate-sde', generation: 2, step: 20, reward: 0.8, thumbnail: sample(11) },
      { id: 'x3', op: 'rollout', generation: 3, step: 0, reward: 0.91, thumbnail: sample(12) },
    ],
  };
}

function assertSelfContained(html: string): void {
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i, 'no external src/href');
  assert.doesNotMatch(html, /<script/i, 'no script elements');
  assert.doesNotMatch(html, /<link\b/i, 'no linked stylesheets');
  assert.doesNotMatch(html, /url\(/i, 'no CSS url()');
  for (const m of html.matchAll(/\bsrc="([^"]*)"/g)) assert.match(m[1]!, /^data:image\/(png|gif);base64,/);
}

describe('html report', () => {
  const XSS = '<script>alert(1)</script>';

  it('is self-contained, escapes the prompt, charts each series once and lists the lineage in order', () => {
    const html = renderHtmlReport({ title: `Run "${XSS}"`, prompts: [promptReport(XSS, true, 1)] });
    assertSelfContained(html);
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(html.includes('data:image/gif;base64,'), 'best video shown as GIF');
    assert.ok(html.includes('data:image/png;base64,'), 'population grid / thumbnails as PNG');
    const svg = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.equal(svg.length, 1);
    const series = [...svg[0]!.matchAll(/<polyline data-series="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(series.sort(), ['best', 'population-max', 'population-mean']);
    const meanPoints = svg[0]!.match(/data-series="population-mean"[^>]*points="([^"]*)"/)![1]!.split(' ');
    assert.equal(meanPoints.length, 3, 'null mean skipped');
    const lineage = [...html.matchAll(/<li class="lineage-step" data-id="([^"]*)" data-op="([^"]*)"/g)].map((m) => `${m[1]}:${m[2]}`);
    assert.deepEqual(lineage, ['x0:init', 'x1:mutate-xT', 'x2:mutate-sde', 'x3:rollout']);
    for (const text of ['evosearch', 'tiny-video', '960', '12.3 s', '5.0 MiB', '0.9100', 'clip', 'aesthetic']) {
      assert.ok(html.includes(text), `mentions ${text}`);
    }
    assert.ok(!html.includes('class="summary"'), 'no summary table for one prompt');
    assert.equal(escapeHtml(`a&b<"'>`), 'a&amp;b&lt;&quot;&#39;&gt;');
  });

  it('several prompts get a summary table and one section each', () => {
    const html = renderHtmlReport({ title: 'Batch', prompts: [promptReport('a cat', false, 2), promptReport(XSS, true, 3), promptReport(null, false, 4)] });
    assertSelfContained(html);
    const table = html.match(/<table class="summary">[\s\S]*?<\/table>/)![0];
    assert.equal((table.match(/<tr>/g) ?? []).length, 4); // header + 3 prompts
    assert.ok(table.includes('a cat') && table.includes('&lt;script&gt;') && table.includes('(unconditional)'));
    assert.ok(table.includes('clip') && table.includes('aesthetic'));
    assert.equal((html.match(/<section class="prompt"/g) ?? []).length, 3);
    assert.equal((html.match(/<svg/g) ?? []).length, 3);
  });
});

// ---------------------------------------------------------------- files

describe('write outputs', () => {
  it('writes best.png, best.gif, best.mp4, population.png and report.html for a video run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'evosearch-report-'));
    try {
      const report = promptReport('a bird', true, 5);
      report.best.sample = randomSample([8, 3, 32, 32], 77); // the shipped video size
      const { files } = writeRunOutputs(join(dir, 'run'), report);
      const names = files.map((f) => f.slice(join(dir, 'run').length + 1)).sort();
      assert.deepEqual(names, ['best.gif', 'best.mp4', 'best.png', 'population.png', 'report.html']);
      assert.deepEqual(readdirSync(join(dir, 'run')).sort(), names, 'no temporary files left');
      const best = PNG.sync.read(readFileSync(join(dir, 'run', 'best.png')));
      assert.deepEqual([best.width, best.height], [256, 256]);
      assert.equal(parseGif(readFileSync(join(dir, 'run', 'best.gif'))).frames.length, 8);
      assert.equal(demuxMp4(readFileSync(join(dir, 'run', 'best.mp4'))).samples.length, 8);
      const pop = PNG.sync.read(readFileSync(join(dir, 'run', 'population.png')));
      assert.deepEqual([pop.width, pop.height], [4 * 16 + 3 * 2, 3 * 16 + 2 * 2]); // 3 rows of 4 frames
      assertSelfContained(readFileSync(join(dir, 'run', 'report.html'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an image run has no GIF/MP4; the summary report is one HTML file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'evosearch-report-'));
    try {
      const { files } = writeRunOutputs(dir, promptReport('a cat', false, 6));
      assert.deepEqual(files.map((f) => f.slice(dir.length + 1)).sort(), ['best.png', 'population.png', 'report.html']);
      const summary = writeSummaryReport(join(dir, 'all'), { title: 'All', prompts: [promptReport('a', false, 7), promptReport('b', true, 8)] });
      assert.deepEqual(summary.files, [join(dir, 'all', 'report.html')]);
      assert.ok(existsSync(summary.files[0]!));
      assert.ok(readFileSync(summary.files[0]!, 'utf8').includes('class="summary"'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
