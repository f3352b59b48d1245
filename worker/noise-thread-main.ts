/**
 * Entry point of a noise helper thread (worker/noise-prefetch.ts). It draws the normals of each
 * request it is sent into the request's shared buffer, sharing the work with the requesting thread,
 * and answers with the request's sequence number once it has done its part.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NoiseSource } from '../random/noise-source.js';
import { drawClaimed, type NoiseRequestMessage } from './noise-prefetch.js';

const port = parentPort;
if (port === null) throw new Error('worker/noise-thread-main.js must run as a worker thread');
const noise = new NoiseSource((workerData as { seed: number | bigint }).seed);

port.on('message', (request: NoiseRequestMessage) => {
  drawClaimed(noise, request);
  port.postMessage(request.seq);
});
