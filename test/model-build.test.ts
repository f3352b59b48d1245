/**
 * A model's build is what a coordinator compares across workers, so it must name every byte of a
 * bundle, and it must be computable for a real model's weights: SD 2.1's U-Net is 3.5 GB in fp32, past
 * the 2 GiB one `readFile` returns.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelBuild } from '../worker/model-build.js';

async function bundle(files: Record<string, string>): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'model-build-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(folder, name, '..'), { recursive: true });
    await writeFile(join(folder, name), text);
  }
  return folder;
}

describe('modelBuild', () => {
  it('is a sha256 over each file path and its bytes, in path order', async () => {
    const folder = await bundle({ 'unet/model.onnx': 'weights', 'model_index.json': '{}' });
    try {
      const expected = createHash('sha256').update('file\0model_index.json\0').update('{}').update('file\0unet/model.onnx\0').update('weights').digest('hex');
      assert.equal(await modelBuild(folder), `sha256:${expected}`);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('changes with one byte of one file, and with a file name', async () => {
    const a = await bundle({ 'unet/model.onnx': 'weights-a', 'model_index.json': '{}' });
    const b = await bundle({ 'unet/model.onnx': 'weights-b', 'model_index.json': '{}' });
    const c = await bundle({ 'unet/model2.onnx': 'weights-a', 'model_index.json': '{}' });
    try {
      const [ba, bb, bc] = await Promise.all([modelBuild(a), modelBuild(b), modelBuild(c)]);
      assert.notEqual(ba, bb);
      assert.notEqual(ba, bc);
    } finally {
      await Promise.all([a, b, c].map((f) => rm(f, { recursive: true, force: true })));
    }
  });

  it('reads a weights file past 2 GiB (streamed, not one buffer)', async () => {
    const folder = await bundle({ 'model_index.json': '{}' });
    try {
      // Sparse: 2 GiB + 1 MiB of zeros costs no disk, and the old readFile refused it (ERR_FS_FILE_TOO_LARGE).
      const size = 2 ** 31 + 2 ** 20;
      await mkdir(join(folder, 'unet'));
      const handle = await open(join(folder, 'unet', 'model.onnx.data'), 'w');
      await handle.truncate(size);
      await handle.close();
      const zeros = Buffer.alloc(2 ** 24);
      const expected = createHash('sha256').update('file\0model_index.json\0').update('{}').update('file\0unet/model.onnx.data\0');
      for (let left = size; left > 0; left -= zeros.length) expected.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
      assert.equal(await modelBuild(folder), `sha256:${expected.digest('hex')}`);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
