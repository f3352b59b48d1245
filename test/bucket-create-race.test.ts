import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { createBucketOnce } from '../cluster/create-jetstream-bucket.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';

/**
 * Workers started together all make the registry bucket, and a coordinator and a client can both make
 * the checkpoint store. Seen in CI (2026-12-01): one of two workers started at once exited with "subjects
 * overlap with an existing stream". Here 16 connections race to make each of 40 fresh buckets: without the retry, 2 of 3 runs of this test saw the error.
 */
describe('making a JetStream bucket from several processes at once', () => {
  let nats: NatsServer;
  let connections: NatsConnection[];
  before(async () => {
    nats = await startNatsServer();
    connections = await Promise.all(Array.from({ length: 16 }, () => connect({ servers: nats.url })));
  });
  after(async () => {
    await Promise.all(connections.map((nc) => nc.close()));
    await nats.stop();
  });

  it('every racer gets the KV bucket', async () => {
    for (let i = 0; i < 40; i++) {
      const name = `race-kv-${i}`;
      const buckets = await Promise.all(connections.map((nc) => createBucketOnce(() => new Kvm(nc).create(name, { history: 1 }))));
      await buckets[0]!.put('k', 'v');
      assert.equal((await buckets[3]!.get('k'))?.string(), 'v');
    }
  });

  it('every racer gets the object store', async () => {
    for (let i = 0; i < 40; i++) {
      const stores = await Promise.all(connections.map((nc) => createBucketOnce(() => new Objm(nc).create(`race-obj-${i}`))));
      await stores[1]!.putBlob({ name: 'o' }, new Uint8Array([1, 2, 3]));
      assert.deepEqual(Array.from((await stores[2]!.getBlob('o')) ?? []), [1, 2, 3]);
    }
  });

  it('any other error is not retried', async () => {
    let calls = 0;
    await assert.rejects(createBucketOnce(async () => { calls += 1; throw new Error('bucket name is not valid'); }), /not valid/);
    assert.equal(calls, 1);
  });
});
