import { hostname } from 'node:os';

/** `host:port`, as --listen and --advertise take it. */
export const HOST_PORT = /^[^\s]+:\d+$/;

/**
 * The address others should dial for a server bound at `bound`: `advertise` when given, else the bound
 * address with a wildcard host (0.0.0.0, [::]) replaced by this machine's name.
 */
export function advertisedAddress(bound: string, advertise?: string): string {
  return advertise ?? bound.replace(/^0\.0\.0\.0:|^\[::\]:/, `${hostname()}:`);
}
