/**
 * The gRPC channel options of this project's servers and clients, set on purpose in one place: how
 * large a message may be, and how soon a peer that stopped answering is noticed.
 *
 * Message size. Nothing here sends a large message: tensors and long bodies travel in frames of at
 * most CHUNK_BYTES (1 MiB) of data, and a header carries at most INLINE_BODY_BYTES (256 KiB) of JSON
 * plus about 4 bytes per tensor it announces (proto/tensor-frames.ts). 8 MiB is 8 times the largest
 * chunk: room for a header announcing about two million tensors (a batch of hundreds of thousands
 * of states), while a peer that does not chunk, or a bug that puts a whole tensor in one message, is
 * refused with RESOURCE_EXHAUSTED naming the limit before anything that large is buffered. Both
 * directions are limited: grpc-js limits only what it receives by default (4 MiB) and sends anything,
 * so an oversized message would otherwise fail at the far end, in the far end's words.
 *
 * Liveness. A worker whose process is stopped (SIGSTOP, swapped out, a VM paused) or whose network is
 * cut keeps its TCP connection open: without keepalive an Execute call to it waits for its deadline
 * (30 min). With an HTTP/2 PING every 2 s that must be answered within 4 s, the connection is dropped
 * 4 to 6 s after the peer stops answering, and every call on it fails with UNAVAILABLE (the worker is
 * lost; the dispatcher rebuilds its states elsewhere). Pings are answered by the peer's HTTP/2 layer on
 * its main event loop, which the worker keeps free (commands run on a worker thread): 4 s tolerates
 * pauses of that loop (a large frame being copied, a GC) without calling a busy worker lost. Pings go
 * on between calls too (permit_without_calls), so a worker that froze between rounds is known lost
 * before the next round is sent to it.
 *
 * The servers need no option to accept these pings. grpc-js servers (1.14, checked in its server.js
 * and transport.js) enforce no ping policy: they never send the GOAWAY "too_many_pings" that gRPC's
 * C core sends to clients pinging more often than `grpc.http2.min_ping_interval_without_data_ms`
 * allows (default 5 min). grpc-js does not implement that option, so it is not set here; a worker
 * behind a C-core proxy would need it (and `grpc.http2.max_ping_strikes`) set there.
 */
import type { ChannelOptions } from '@grpc/grpc-js';

/** The largest message any of this project's gRPC services sends or accepts, bytes (see above). */
export const MAX_MESSAGE_BYTES = 8 * 2 ** 20;

/** Keepalive of the channels to workers: a PING this often, milliseconds... */
export const WORKER_KEEPALIVE_MS = 2000;
/** ...answered within this long, or the connection (and every call on it) fails with UNAVAILABLE. */
export const WORKER_KEEPALIVE_TIMEOUT_MS = 4000;

const MESSAGE_LIMITS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
};

/** Options of a worker's gRPC server (worker/grpc-server.ts). */
export const workerServerOptions: ChannelOptions = Object.freeze({ ...MESSAGE_LIMITS });

/** Options of a channel to a worker: the coordinator's pool, and a denoising worker's to its reward workers. */
export const workerClientOptions: ChannelOptions = Object.freeze({
  ...MESSAGE_LIMITS,
  'grpc.keepalive_time_ms': WORKER_KEEPALIVE_MS,
  'grpc.keepalive_timeout_ms': WORKER_KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 1,
});

/**
 * Options of the coordinator service's server (proto/coordinator.proto). Its largest messages are
 * file chunks (CHUNK_BYTES) and List replies, which grow with the runs the coordinator knows (a few
 * hundred bytes each: 8 MiB holds some 20,000).
 */
export const coordinatorServerOptions: ChannelOptions = Object.freeze({ ...MESSAGE_LIMITS });

/**
 * Options of a client of the coordinator service. Its Watch streams last as long as a run and may
 * cross networks that drop idle connections: a PING every 10 s, answered within 10 s, keeps them open
 * and notices a frozen coordinator or a cut network within 20 s (nothing is rebuilt on this side, so
 * there is no hurry to match the workers' seconds).
 */
export const coordinatorClientOptions: ChannelOptions = Object.freeze({
  ...MESSAGE_LIMITS,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
});
