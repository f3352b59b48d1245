/**
 * Minimal types for gifenc 1.0.3 (the package ships none). Its Node entry is
 * CommonJS whose named exports Node's ESM loader cannot detect, so import the
 * default (module.exports) and take the functions from it:
 *   import gifenc from 'gifenc'; const { GIFEncoder } = gifenc;
 */
declare module 'gifenc' {
  namespace gifenc {
    type Palette = number[][];
    type ColorFormat = 'rgb565' | 'rgb444' | 'rgba4444';

    interface QuantizeOptions {
      format?: ColorFormat;
      oneBitAlpha?: boolean | number;
      clearAlpha?: boolean;
      clearAlphaThreshold?: number;
      clearAlphaColor?: number;
    }

    interface WriteFrameOptions {
      palette?: Palette | null;
      first?: boolean;
      transparent?: boolean;
      transparentIndex?: number;
      /** Frame delay in milliseconds (stored in hundredths of a second). */
      delay?: number;
      /** -1 once, 0 forever, n > 0 that many repetitions. */
      repeat?: number;
      colorDepth?: number;
      dispose?: number;
    }

    interface Encoder {
      writeFrame(index: Uint8Array, width: number, height: number, opts?: WriteFrameOptions): void;
      writeHeader(): void;
      finish(): void;
      bytes(): Uint8Array;
      bytesView(): Uint8Array;
      reset(): void;
      readonly buffer: ArrayBuffer;
    }

    interface Module {
      GIFEncoder(opts?: { initialCapacity?: number; auto?: boolean }): Encoder;
      quantize(rgba: Uint8Array | Uint8ClampedArray, maxColors: number, opts?: QuantizeOptions): Palette;
      applyPalette(rgba: Uint8Array | Uint8ClampedArray, palette: Palette, format?: ColorFormat): Uint8Array;
      nearestColorIndex(palette: Palette, pixel: number[]): number;
      nearestColorIndexWithDistance(palette: Palette, pixel: number[]): [number, number];
    }
  }
  const gifenc: gifenc.Module;
  export = gifenc;
}
