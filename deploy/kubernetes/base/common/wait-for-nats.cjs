// The init container of the coordinator and the workers (the ConfigMap evosearch-wait-for-nats):
// exits 0 once the NATS server at the URL given answers a connection with its INFO line, 1 after 10
// minutes of trying. A single nats-server starts JetStream before it accepts clients, so an INFO means
// the buckets can be made.
//
// Why the pods need it: `evosearch worker` connects to NATS once it serves gRPC, and when NATS cannot
// be reached then (its pod still starting) it prints the error but does not exit (its gRPC server keeps
// the process alive): the pod would stay Running, never registered, never restarted. The coordinator
// exits (3) and would be restarted with a growing back-off. Waiting here starts both once NATS is up.
//
//   node wait-for-nats.cjs nats://evosearch-nats:4222
'use strict';
const net = require('node:net');

const url = new URL(process.argv[2] ?? '');
const port = Number(url.port || 4222);
const deadline = Date.now() + 10 * 60 * 1000;

function attempt() {
  const socket = net.connect(port, url.hostname);
  let done = false;
  const retry = (why) => {
    if (done) return;
    done = true;
    socket.destroy();
    if (Date.now() > deadline) {
      process.stderr.write(`wait-for-nats: no NATS server answered at ${url.host} for 10 minutes (last: ${why})\n`);
      process.exit(1);
    }
    setTimeout(attempt, 2000);
  };
  socket.setTimeout(5000, () => retry('no answer within 5 s'));
  socket.once('error', (error) => retry(error.code ?? error.message));
  socket.once('close', () => retry('connection closed'));
  socket.once('data', (data) => {
    if (!String(data).startsWith('INFO ')) return retry(`it sent ${JSON.stringify(String(data).slice(0, 20))}, not INFO`);
    done = true;
    socket.destroy();
    process.stdout.write(`wait-for-nats: NATS answers at ${url.host}\n`);
    process.exit(0);
  });
}

attempt();
