/**
 * The wire contract is the .proto files, and they are typed through: no field carries JSON (a string
 * whose content is another schema, unreadable from the .proto), and every message is reachable from a
 * service or documented as a NATS payload.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { repoRoot } from './support/repo-root.js';

const protoDir = join(repoRoot(), 'proto');
const protoFiles = readdirSync(protoDir).filter((f) => f.endsWith('.proto'));

function allTypes(namespace: protobuf.NamespaceBase): protobuf.Type[] {
  return namespace.nestedArray.flatMap((nested) => [...(nested instanceof protobuf.Type ? [nested] : []), ...(nested instanceof protobuf.Namespace || nested instanceof protobuf.Type ? allTypes(nested) : [])]);
}

describe('the wire contract', () => {
  it('no field of any .proto carries JSON', () => {
    assert.ok(protoFiles.length >= 3, `found ${protoFiles.join(', ')}`);
    const offenders: string[] = [];
    let fields = 0;
    for (const file of protoFiles) {
      const root = new protobuf.Root().loadSync(join(protoDir, file), { alternateCommentMode: true, keepCase: true });
      for (const type of allTypes(root)) {
        for (const field of type.fieldsArray) {
          fields += 1;
          const says = `${field.name} ${field.comment ?? ''}`;
          if (/json/i.test(field.name) || (field.type === 'string' && /\bas JSON\b|\bJSON (text|object|string)\b/i.test(field.comment ?? ''))) offenders.push(`${file}: ${type.name}.${field.name}: ${says}`);
        }
      }
    }
    assert.ok(fields > 150, `only ${fields} fields read: is the scan reading the files?`);
    assert.deepEqual(offenders, []);
  });

  it('the check finds a JSON field when there is one (it can fail)', () => {
    const root = protobuf.parse('syntax = "proto3"; message SetupRequest { string run_id = 1; string setup_json = 2; }', { keepCase: true }).root;
    assert.ok(allTypes(root).some((t) => t.fieldsArray.some((f) => /json/i.test(f.name))));
  });
});
