/**
 * The procedural world's constants as data (models/world/WORLD.md): canvas, background, the six object
 * colors, the three shapes, the sizes. The Python renderer (models/world/world.py) holds the same numbers;
 * the checker tests compare both through the fixtures, so a drift on either side fails a test.
 */

export type Rgb = readonly [number, number, number];

/** Images are CANVAS x CANVAS pixels; videos have FRAMES of them. */
export const CANVAS = 32;
export const FRAMES = 8;
/** Pixels an object moves per frame in a motion prompt. */
export const MOTION_STEP = 2;

export const BACKGROUND: Rgb = [32, 32, 32];

export const COLOR_NAMES = ['red', 'green', 'blue', 'yellow', 'purple', 'white'] as const;
export type ColorName = (typeof COLOR_NAMES)[number];

export const PALETTE: Readonly<Record<ColorName, Rgb>> = {
  red: [220, 40, 40],
  green: [40, 200, 70],
  blue: [50, 90, 235],
  yellow: [235, 215, 40],
  purple: [155, 60, 205],
  white: [240, 240, 240],
};

export const SHAPE_NAMES = ['circle', 'square', 'triangle'] as const;
export type ShapeName = (typeof SHAPE_NAMES)[number];

/** Size words; a group without one has the default size. */
export const SIZE_WORDS = ['small', 'large'] as const;
export type SizeWord = (typeof SIZE_WORDS)[number];

/**
 * Radius (half the side of a square, half the width of a circle or triangle) per size word; null = no
 * size word. Every shape of radius r spans exactly 2r pixel columns when rendered.
 */
export const SIZE_RADIUS: Readonly<Record<SizeWord | 'default', number>> = { small: 3, default: 4, large: 6 };

export function radiusOf(size: SizeWord | null): number {
  return SIZE_RADIUS[size ?? 'default'];
}
