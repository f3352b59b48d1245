/** Plain HTTP requests to a test's metrics endpoint, and its Prometheus text read into samples. */
import { request } from 'node:http';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** One request to http://`address``path`; `body` is sent as is (the endpoint must not read it). */
export function httpRequest(address: string, path: string, method = 'GET', body?: string): Promise<HttpAnswer> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request({ host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)), path, method, agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from http://${address}${path} within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * GET /metrics, as samples by their series as printed (`name` or `name{label="value"}`): the tests
 * compare what a scraper would see.
 */
export async function scrape(address: string): Promise<Map<string, number>> {
  const answer = await httpRequest(address, '/metrics');
  if (answer.status !== 200) throw new Error(`GET /metrics answered ${answer.status}: ${answer.body}`);
  const samples = new Map<string, number>();
  for (const line of answer.body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** A sample's value; a missing series fails the test, naming it. */
export function sample(samples: ReadonlyMap<string, number>, series: string): number {
  const value = samples.get(series);
  if (value === undefined) throw new Error(`no series ${series} in the scrape (it has: ${[...samples.keys()].filter((k) => k.startsWith('evosearch_')).join(', ')})`);
  return value;
}
