/**
 * A NATS server in operator (JWT) mode for the credentials-file tests, made here without `nsc`: an
 * operator, a system account (JetStream needs one), an account with JetStream, and a user of it whose
 * .creds file is what `nsc generate creds` writes. JWTs are signed with the NATS client's own nkeys.
 */
import { nkeys } from '@nats-io/transport-node';

type KeyPair = ReturnType<typeof nkeys.createOperator>;

const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
const JETSTREAM = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

function jwt(issuer: KeyPair, subject: KeyPair, name: string, nats: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = part({ typ: 'JWT', alg: 'ed25519-nkey' });
  const claims = part({ jti: `${name}-${Date.now()}`, iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject.getPublicKey(), nats: { ...nats, version: 2 } });
  return `${header}.${claims}.${Buffer.from(issuer.sign(new TextEncoder().encode(`${header}.${claims}`))).toString('base64url')}`;
}

/** A server configuration trusting a new operator, and the .creds file text of one user of its account. */
export function operatorWithUser(): { readonly config: string; readonly creds: string } {
  const operator = nkeys.createOperator();
  const system = nkeys.createAccount();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const config = [
    `operator: ${jwt(operator, operator, 'test-operator', { type: 'operator' })}`,
    `system_account: ${system.getPublicKey()}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${system.getPublicKey()}: ${jwt(operator, system, 'SYS', { type: 'account', limits: UNLIMITED })}`,
    `  ${account.getPublicKey()}: ${jwt(operator, account, 'EVOSEARCH', { type: 'account', limits: { ...UNLIMITED, ...JETSTREAM } })}`,
    '}',
    '',
  ].join('\n');
  const userJwt = jwt(account, user, 'evosearch-user', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
  const creds = `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`;
  return { config, creds };
}
