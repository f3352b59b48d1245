/**
 * MP4 (H.264) of a video sample with no native encoder: a minimal H.264
 * Baseline encoder that codes every macroblock as I_PCM (raw samples, so it
 * is lossless in YUV 4:2:0), muxed with mp4-muxer.
 *
 * Bitstream written (ITU-T H.264):
 *   - SPS: profile_idc 66 (Baseline) with constraint_set0/1/2 flags (0xE0),
 *     level chosen from frame size, macroblock rate and bit rate (Table A-1),
 *     pic_order_cnt_type 2, max_num_ref_frames 0, frame_mbs_only, frame
 *     cropping when the size is not a multiple of 16, and a VUI that says
 *     BT.601 limited range (colour description 6/6/6) and no frame reordering;
 *   - PPS: CAVLC, one slice group, deblocking control present;
 *   - per frame ONE IDR access unit: one I slice (slice_type 7) holding every
 *     macroblock as mb_type I_PCM = ue(25), pcm_alignment_zero_bits, 256 luma
 *     bytes then 64 Cb and 64 Cr bytes; deblocking disabled; idr_pic_id
 *     alternates so consecutive IDRs differ.
 * RGB -> Y'CbCr uses BT.601 limited range (Y 16..235, C 16..240); chroma is
 * the 2x2 average. Frames are padded to multiples of 16 by edge replication
 * and cropped back in the SPS; an odd width/height is rounded up to even
 * (4:2:0 crops in units of 2).
 *
 * MP4 samples are AVCC (4-byte big-endian length-prefixed NAL units); the SPS
 * and PPS travel in the avcC record (AVCDecoderConfigurationRecord).
 */
import { ArrayBufferTarget, Muxer } from 'mp4-muxer';
import type { SampleData } from './report-data.js';
import { sampleGeometry, toRgbaFrames, type RgbaImage } from './image-encoding.js';

/** Writes an RBSP bit by bit (MSB first), with a byte fast path when aligned. */
class BitWriter {
  private buf = new Uint8Array(1024);
  private length = 0;
  private cur = 0;
  private nbits = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  get aligned(): boolean {
    return this.nbits === 0;
  }

  bit(b: number): void {
    this.cur = (this.cur << 1) | (b & 1);
    this.nbits += 1;
    if (this.nbits === 8) {
      this.ensure(1);
      this.buf[this.length++] = this.cur;
      this.cur = 0;
      this.nbits = 0;
    }
  }

  /** u(n): `value` in n bits, n <= 32. */
  u(n: number, value: number): void {
    for (let i = n - 1; i >= 0; i--) this.bit(Math.floor(value / 2 ** i) & 1);
  }

  /** ue(v): unsigned Exp-Golomb. */
  ue(v: number): void {
    const x = v + 1;
    const len = Math.floor(Math.log2(x));
    for (let i = 0; i < len; i++) this.bit(0);
    this.u(len + 1, x);
  }

  /** se(v): signed Exp-Golomb. */
  se(v: number): void {
    this.ue(v > 0 ? 2 * v - 1 : -2 * v);
  }

  /** Whole bytes; the writer must be byte aligned. */
  bytes(data: Uint8Array): void {
    if (!this.aligned) throw new Error('BitWriter.bytes needs byte alignment');
    this.ensure(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }

  /** Zero bits up to the next byte boundary (e.g. pcm_alignment_zero_bit). */
  alignZero(): void {
    while (!this.aligned) this.bit(0);
  }

  /** rbsp_trailing_bits(): rbsp_stop_one_bit then zero bits to alignment. */
  trailing(): void {
    this.bit(1);
    this.alignZero();
  }

  finish(): Uint8Array {
    if (!this.aligned) throw new Error('RBSP must end byte aligned');
    return this.buf.slice(0, this.length);
  }
}

/** A NAL unit: header byte + RBSP with emulation prevention bytes inserted. */
export function nalUnit(nalRefIdc: number, nalUnitType: number, rbsp: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + rbsp.length + Math.ceil(rbsp.length / 2) + 1);
  let n = 0;
  out[n++] = ((nalRefIdc & 3) << 5) | (nalUnitType & 31);
  let zeros = 0;
  for (let i = 0; i < rbsp.length; i++) {
    const b = rbsp[i]!;
    if (zeros >= 2 && b <= 3) {
      out[n++] = 3;
      zeros = 0;
    }
    out[n++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return out.slice(0, n);
}

interface Level {
  idc: number;
  maxMbps: number;
  maxFs: number;
  maxBrKbps: number;
}

// ITU-T H.264 Table A-1 (Baseline: MaxBR in 1000 bit/s units). Level 1b is skipped.
const LEVELS: readonly Level[] = [
  { idc: 10, maxMbps: 1485, maxFs: 99, maxBrKbps: 64 },
  { idc: 11, maxMbps: 3000, maxFs: 396, maxBrKbps: 192 },
  { idc: 12, maxMbps: 6000, maxFs: 396, maxBrKbps: 384 },
  { idc: 13, maxMbps: 11880, maxFs: 396, maxBrKbps: 768 },
  { idc: 20, maxMbps: 11880, maxFs: 396, maxBrKbps: 2000 },
  { idc: 21, maxMbps: 19800, maxFs: 792, maxBrKbps: 4000 },
  { idc: 22, maxMbps: 20250, maxFs: 1620, maxBrKbps: 4000 },
  { idc: 30, maxMbps: 40500, maxFs: 1620, maxBrKbps: 10000 },
  { idc: 31, maxMbps: 108000, maxFs: 3600, maxBrKbps: 14000 },
  { idc: 32, maxMbps: 216000, maxFs: 5120, maxBrKbps: 20000 },
  { idc: 40, maxMbps: 245760, maxFs: 8192, maxBrKbps: 20000 },
  { idc: 41, maxMbps: 245760, maxFs: 8192, maxBrKbps: 50000 },
  { idc: 42, maxMbps: 522240, maxFs: 8704, maxBrKbps: 50000 },
  { idc: 50, maxMbps: 589824, maxFs: 22080, maxBrKbps: 135000 },
  { idc: 51, maxMbps: 983040, maxFs: 36864, maxBrKbps: 240000 },
  { idc: 52, maxMbps: 2073600, maxFs: 36864, maxBrKbps: 240000 },
];

/** The lowest level that fits the frame size, macroblock rate and (I_PCM) bit rate; 52 if none does. */
export function chooseLevel(mbWidth: number, mbHeight: number, fps: number): number {
  const frameMbs = mbWidth * mbHeight;
  const kbps = (frameMbs * 384 * 8 * fps) / 1000;
  const fit = LEVELS.find((l) => {
    const side = Math.sqrt(8 * l.maxFs);
    return frameMbs <= l.maxFs && mbWidth <= side && mbHeight <= side && frameMbs * fps <= l.maxMbps && kbps <= l.maxBrKbps;
  });
  return fit ? fit.idc : 52;
}

const PROFILE_BASELINE = 66;
/** constraint_set0_flag, constraint_set1_flag, constraint_set2_flag (+ 5 zero bits). */
const CONSTRAINT_FLAGS = 0xe0;
const LOG2_MAX_FRAME_NUM = 4;

function writeSps(mbWidth: number, mbHeight: number, cropRight: number, cropBottom: number, levelIdc: number): Uint8Array {
  const w = new BitWriter();
  w.u(8, PROFILE_BASELINE);
  w.u(8, CONSTRAINT_FLAGS);
  w.u(8, levelIdc);
  w.ue(0); // seq_parameter_set_id
  w.ue(LOG2_MAX_FRAME_NUM - 4); // log2_max_frame_num_minus4
  w.ue(2); // pic_order_cnt_type: output order = decoding order
  w.ue(0); // max_num_ref_frames: intra only
  w.u(1, 0); // gaps_in_frame_num_value_allowed_flag
  w.ue(mbWidth - 1); // pic_width_in_mbs_minus1
  w.ue(mbHeight - 1); // pic_height_in_map_units_minus1
  w.u(1, 1); // frame_mbs_only_flag
  w.u(1, 1); // direct_8x8_inference_flag
  const crop = cropRight > 0 || cropBottom > 0;
  w.u(1, crop ? 1 : 0); // frame_cropping_flag
  if (crop) {
    // 4:2:0, frame_mbs_only: CropUnitX = CropUnitY = 2.
    w.ue(0);
    w.ue(cropRight / 2);
    w.ue(0);
    w.ue(cropBottom / 2);
  }
  w.u(1, 1); // vui_parameters_present_flag
  w.u(1, 0); // aspect_ratio_info_present_flag
  w.u(1, 0); // overscan_info_present_flag
  w.u(1, 1); // video_signal_type_present_flag
  w.u(3, 5); // video_format: unspecified
  w.u(1, 0); // video_full_range_flag: limited range
  w.u(1, 1); // colour_description_present_flag
  w.u(8, 6); // colour_primaries: SMPTE 170M
  w.u(8, 6); // transfer_characteristics: SMPTE 170M
  w.u(8, 6); // matrix_coefficients: SMPTE 170M (BT.601)
  w.u(1, 0); // chroma_loc_info_present_flag
  w.u(1, 0); // timing_info_present_flag
  w.u(1, 0); // nal_hrd_parameters_present_flag
  w.u(1, 0); // vcl_hrd_parameters_present_flag
  w.u(1, 0); // pic_struct_present_flag
  w.u(1, 1); // bitstream_restriction_flag
  w.u(1, 1); // motion_vectors_over_pic_boundaries_flag
  w.ue(0); // max_bytes_per_pic_denom
  w.ue(0); // max_bits_per_mb_denom
  w.ue(16); // log2_max_mv_length_horizontal
  w.ue(16); // log2_max_mv_length_vertical
  w.ue(0); // max_num_reorder_frames
  w.ue(0); // max_dec_frame_buffering
  w.trailing();
  return nalUnit(3, 7, w.finish());
}

function writePps(): Uint8Array {
  const w = new BitWriter();
  w.ue(0); // pic_parameter_set_id
  w.ue(0); // seq_parameter_set_id
  w.u(1, 0); // entropy_coding_mode_flag: CAVLC
  w.u(1, 0); // bottom_field_pic_order_in_frame_present_flag
  w.ue(0); // num_slice_groups_minus1
  w.ue(0); // num_ref_idx_l0_default_active_minus1
  w.ue(0); // num_ref_idx_l1_default_active_minus1
  w.u(1, 0); // weighted_pred_flag
  w.u(2, 0); // weighted_bipred_idc
  w.se(0); // pic_init_qp_minus26
  w.se(0); // pic_init_qs_minus26
  w.se(0); // chroma_qp_index_offset
  w.u(1, 1); // deblocking_filter_control_present_flag
  w.u(1, 0); // constrained_intra_pred_flag
  w.u(1, 0); // redundant_pic_cnt_present_flag
  w.trailing();
  return nalUnit(3, 8, w.finish());
}

export interface Yuv420 {
  /** Coded (padded) size, multiples of 16. */
  width: number;
  height: number;
  y: Uint8Array;
  cb: Uint8Array;
  cr: Uint8Array;
}

const clampByte = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : Math.round(v));

/**
 * BT.601 limited-range Y'CbCr 4:2:0 of an RGBA image, padded to
 * `codedWidth` x `codedHeight` by replicating the last column / row.
 * Chroma is computed from the average RGB of each 2x2 block.
 */
export function rgbaToYuv420(image: RgbaImage, codedWidth: number, codedHeight: number): Yuv420 {
  const { width, height, data } = image;
  const y = new Uint8Array(codedWidth * codedHeight);
  const cw = codedWidth >> 1;
  const ch = codedHeight >> 1;
  const cb = new Uint8Array(cw * ch);
  const cr = new Uint8Array(cw * ch);
  const px = (xx: number, yy: number): number => (Math.min(yy, height - 1) * width + Math.min(xx, width - 1)) * 4;
  for (let j = 0; j < codedHeight; j++) {
    for (let i = 0; i < codedWidth; i++) {
      const p = px(i, j);
      y[j * codedWidth + i] = clampByte(16 + (65.481 * data[p]! + 128.553 * data[p + 1]! + 24.966 * data[p + 2]!) / 255, 16, 235);
    }
  }
  for (let j = 0; j < ch; j++) {
    for (let i = 0; i < cw; i++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
        const p = px(2 * i + dx, 2 * j + dy);
        r += data[p]!;
        g += data[p + 1]!;
        b += data[p + 2]!;
      }
      r /= 4 * 255;
      g /= 4 * 255;
      b /= 4 * 255;
      cb[j * cw + i] = clampByte(128 - 37.797 * r - 74.203 * g + 112.0 * b, 16, 240);
      cr[j * cw + i] = clampByte(128 + 112.0 * r - 93.786 * g - 18.214 * b, 16, 240);
    }
  }
  return { width: codedWidth, height: codedHeight, y, cb, cr };
}

/** One IDR slice NAL unit with every macroblock I_PCM. */
function writeIdrSlice(frame: Yuv420, idrPicId: number): Uint8Array {
  const w = new BitWriter();
  w.ue(0); // first_mb_in_slice
  w.ue(7); // slice_type: I (all slices of the picture)
  w.ue(0); // pic_parameter_set_id
  w.u(LOG2_MAX_FRAME_NUM, 0); // frame_num (0 for IDR)
  w.ue(idrPicId); // idr_pic_id
  // pic_order_cnt_type 2: nothing. I slice: no ref lists, no weights.
  w.u(1, 0); // dec_ref_pic_marking: no_output_of_prior_pics_flag
  w.u(1, 0); // dec_ref_pic_marking: long_term_reference_flag
  w.se(0); // slice_qp_delta
  w.ue(1); // disable_deblocking_filter_idc: off
  const mbW = frame.width / 16;
  const mbH = frame.height / 16;
  const cw = frame.width / 2;
  const luma = new Uint8Array(256);
  const chroma = new Uint8Array(128);
  for (let my = 0; my < mbH; my++) {
    for (let mx = 0; mx < mbW; mx++) {
      w.ue(25); // mb_type I_PCM (I slice)
      w.alignZero(); // pcm_alignment_zero_bit
      for (let r = 0; r < 16; r++) {
        const o = (my * 16 + r) * frame.width + mx * 16;
        luma.set(frame.y.subarray(o, o + 16), r * 16);
      }
      for (let r = 0; r < 8; r++) {
        const o = (my * 8 + r) * cw + mx * 8;
        chroma.set(frame.cb.subarray(o, o + 8), r * 8);
        chroma.set(frame.cr.subarray(o, o + 8), 64 + r * 8);
      }
      w.bytes(luma); // pcm_sample_luma[256]
      w.bytes(chroma); // pcm_sample_chroma[2 * 64]: Cb then Cr
    }
  }
  w.trailing(); // rbsp_slice_trailing_bits
  return nalUnit(3, 5, w.finish());
}

/** 4-byte big-endian length-prefixed NAL units (AVCC sample format). */
export function toAvcc(nals: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(nals.reduce((n, u) => n + 4 + u.length, 0));
  const view = new DataView(out.buffer);
  let o = 0;
  for (const u of nals) {
    view.setUint32(o, u.length);
    out.set(u, o + 4);
    o += 4 + u.length;
  }
  return out;
}

/** AVCDecoderConfigurationRecord (ISO/IEC 14496-15) for one SPS and one PPS. */
export function avcDecoderConfigurationRecord(sps: Uint8Array, pps: Uint8Array): Uint8Array {
  const out = new Uint8Array(11 + sps.length + pps.length);
  const view = new DataView(out.buffer);
  out[0] = 1; // configurationVersion
  out[1] = sps[1]!; // AVCProfileIndication
  out[2] = sps[2]!; // profile_compatibility
  out[3] = sps[3]!; // AVCLevelIndication
  out[4] = 0xfc | 3; // lengthSizeMinusOne = 3
  out[5] = 0xe0 | 1; // numOfSequenceParameterSets
  view.setUint16(6, sps.length);
  out.set(sps, 8);
  out[8 + sps.length] = 1; // numOfPictureParameterSets
  view.setUint16(9 + sps.length, pps.length);
  out.set(pps, 11 + sps.length);
  return out;
}

export interface H264Stream {
  /** Display size (after cropping). */
  width: number;
  height: number;
  /** Coded size (multiples of 16). */
  codedWidth: number;
  codedHeight: number;
  levelIdc: number;
  /** e.g. 'avc1.42E01E'. */
  codec: string;
  /** SPS and PPS NAL units (header byte included, emulation prevention applied). */
  sps: Uint8Array;
  pps: Uint8Array;
  /** AVCDecoderConfigurationRecord. */
  avcC: Uint8Array;
  /** One AVCC access unit (a single IDR slice NAL unit) per frame. */
  accessUnits: Uint8Array[];
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');

/** Encodes same-size RGBA frames as an all-I_PCM H.264 Baseline stream. */
export function encodeIPcmH264(frames: readonly RgbaImage[], options: { fps?: number } = {}): H264Stream {
  if (frames.length === 0) throw new Error('encodeIPcmH264 needs at least one frame');
  const fps = options.fps ?? 8;
  const { width: srcW, height: srcH } = frames[0]!;
  for (const f of frames) {
    if (f.width !== srcW || f.height !== srcH) throw new Error('all frames must have the same size');
  }
  const width = srcW + (srcW & 1);
  const height = srcH + (srcH & 1);
  const mbWidth = Math.ceil(width / 16);
  const mbHeight = Math.ceil(height / 16);
  const codedWidth = mbWidth * 16;
  const codedHeight = mbHeight * 16;
  const levelIdc = chooseLevel(mbWidth, mbHeight, fps);
  const sps = writeSps(mbWidth, mbHeight, codedWidth - width, codedHeight - height, levelIdc);
  const pps = writePps();
  const accessUnits = frames.map((f, i) => toAvcc([writeIdrSlice(rgbaToYuv420(f, codedWidth, codedHeight), i % 2)]));
  return {
    width,
    height,
    codedWidth,
    codedHeight,
    levelIdc,
    codec: `avc1.${hex2(PROFILE_BASELINE)}${hex2(CONSTRAINT_FLAGS)}${hex2(levelIdc)}`,
    sps,
    pps,
    avcC: avcDecoderConfigurationRecord(sps, pps),
    accessUnits,
  };
}

export interface Mp4Options {
  /** Frames per second (default 8, i.e. 125 ms per frame). */
  fps?: number;
}

/** An MP4 file (H.264 Baseline, all I_PCM) of same-size RGBA frames. */
export function encodeMp4(frames: readonly RgbaImage[], options: Mp4Options = {}): Uint8Array {
  const fps = options.fps ?? 8;
  if (!(fps > 0)) throw new Error(`fps must be positive, got ${fps}`);
  const stream = encodeIPcmH264(frames, { fps });
  const target = new ArrayBufferTarget();
  const muxer = new Muxer({
    target,
    video: { codec: 'avc', width: stream.width, height: stream.height },
    fastStart: 'in-memory',
  });
  const frameMicros = 1e6 / fps;
  stream.accessUnits.forEach((au, i) => {
    const timestamp = Math.round(i * frameMicros);
    const duration = Math.round((i + 1) * frameMicros) - timestamp;
    muxer.addVideoChunkRaw(au, 'key', timestamp, duration, i === 0 ? {
      decoderConfig: {
        codec: stream.codec,
        codedWidth: stream.codedWidth,
        codedHeight: stream.codedHeight,
        description: stream.avcC,
        colorSpace: { primaries: 'smpte170m', transfer: 'smpte170m', matrix: 'smpte170m', fullRange: false },
      },
    } : undefined);
  });
  muxer.finalize();
  return new Uint8Array(target.buffer);
}

/** An MP4 of a video sample [F, C, H, W] (an image gives one frame). Default scale 8. */
export function sampleToMp4(sample: SampleData, options: Mp4Options & { scale?: number } = {}): Uint8Array {
  sampleGeometry(sample.shape, sample.data.length);
  return encodeMp4(toRgbaFrames(sample.data, sample.shape, options.scale ?? 8), options);
}
