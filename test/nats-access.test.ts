import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkNatsAccess, describeNatsAccess, layerNatsAccess, NatsAccessError, natsAccessFromEnv, natsConnectOptions } from '../cluster/nats-access.js';
import { hasCredentials, shownNatsUrl, splitNatsUrl } from '../cluster/nats-url.js';
import { parseRunConfig } from '../config/resolve-run-config.js';

describe('NATS credentials: out of URLs, layered, never shown', () => {
  it('a URL gives up its user and password, or its token, and keeps the rest', () => {
    assert.deepEqual(splitNatsUrl('nats://worker:p%40ss%3Aword@nats-host:4222'), { url: 'nats://nats-host:4222', credentials: { user: 'worker', password: 'p@ss:word' } });
    assert.deepEqual(splitNatsUrl('tls://s3cr3t-token@nats-host:4222'), { url: 'tls://nats-host:4222', credentials: { token: 's3cr3t-token' } });
    assert.deepEqual(splitNatsUrl('nats://a:b@one:4222,nats://two:4222'), { url: 'nats://one:4222,nats://two:4222', credentials: { user: 'a', password: 'b' } });
    assert.deepEqual(splitNatsUrl('nats://nats-host:4222'), { url: 'nats://nats-host:4222', credentials: {} });
    assert.equal(hasCredentials('nats://u:p@h:1'), true);
    assert.equal(hasCredentials('nats://h:1'), false);
    assert.equal(shownNatsUrl('nats://u:hunter2@h:1'), 'nats://h:1');
  });

  it('flags over the URL over the environment, one way of saying who one is at a time', () => {
    const env = natsAccessFromEnv({ EVOSEARCH_NATS_USER: 'from-env', EVOSEARCH_NATS_PASSWORD: 'env-password', EVOSEARCH_NATS_CA: 'env-ca.pem', EVOSEARCH_NATS_TOKEN: '' });
    assert.deepEqual(env, { user: 'from-env', password: 'env-password', caFile: 'env-ca.pem' });
    // A user given as a flag goes with the password from the environment.
    assert.deepEqual(layerNatsAccess(env, {}, { user: 'client' }), { user: 'client', password: 'env-password', caFile: 'env-ca.pem' });
    // A token from the URL replaces the environment's user and password; TLS files stay.
    assert.deepEqual(layerNatsAccess(env, { token: 't' }, {}), { token: 't', caFile: 'env-ca.pem' });
    // A credentials file on the command line replaces the URL's token.
    assert.deepEqual(layerNatsAccess({}, { token: 't' }, { credsFile: 'me.creds', caFile: 'flag-ca.pem' }), { credsFile: 'me.creds', caFile: 'flag-ca.pem' });
  });

  it('access that cannot be used is refused, naming the flags; what is shown of it holds no secret', () => {
    assert.throws(() => checkNatsAccess({ password: 'x' }), (e: unknown) => e instanceof NatsAccessError && /a password needs its user/.test(e.message));
    assert.throws(() => checkNatsAccess({ token: 't', credsFile: 'c' }), (e: unknown) => e instanceof NatsAccessError && /not a token and a credentials file/.test(e.message));
    assert.throws(() => checkNatsAccess({ keyFile: 'k.pem' }), (e: unknown) => e instanceof NatsAccessError && /--nats-cert and --nats-key.*got only the key/.test(e.message));
    assert.throws(() => natsConnectOptions({ credsFile: '/no/such.creds' }, 'nats://h:1'), (e: unknown) => e instanceof NatsAccessError && /--nats-creds \(or EVOSEARCH_NATS_CREDS\) \/no\/such\.creds: cannot read it/.test(e.message));
    assert.equal(describeNatsAccess({ user: 'client', password: 'hunter2', caFile: 'ca.pem' }), "user 'client' (password), TLS (CA ca.pem)");
    assert.equal(describeNatsAccess({ token: 'hunter2' }), 'a token');
    assert.deepEqual(natsConnectOptions({}, 'tls://h:1'), { tls: {} }, 'a tls:// URL asks for TLS');
    assert.deepEqual(natsConnectOptions({}, 'nats://h:1'), {});
  });

  it("a run configuration's cluster URL with credentials is refused, the field named", () => {
    assert.throws(() => parseRunConfig({ cluster: 'nats://u:hunter2@h:4222' }, 'config file run.yaml'), (e: unknown) => e instanceof Error && /cluster/.test(e.message) && /must not hold credentials/.test(e.message) && !e.message.includes('hunter2'));
    assert.equal(parseRunConfig({ cluster: 'nats://h:4222' }, 'flags').cluster, 'nats://h:4222');
  });
});
