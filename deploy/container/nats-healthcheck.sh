#!/bin/bash
# The NATS image's HEALTHCHECK: does nats-server accept a client? A client connection's first bytes are
# the server's INFO line. The port is the one nats-server wrote into its ports file (the image's command
# has --ports_file_dir /tmp, so a server started on port -1, any free port, as the tests and host
# networking do, is found too), else $NATS_PORT, else 4222.
set -u
target="127.0.0.1:${NATS_PORT:-4222}"
ports="$(cat /tmp/nats-server_1.ports 2>/dev/null || true)" # PID 1's: {"nats":["nats://HOST:PORT",...],...} (2.9)
if [ -n "$ports" ]; then
  # Its client URLs: one for a server bound to one address, one per interface for a wildcard (0.0.0.0),
  # which is asked over loopback.
  urls="$(printf '%s' "$ports" | sed -n 's/.*"\(nats\|client\)":\[\([^]]*\)\].*/\2/p' | tr ',' '\n' | sed -n 's/^"nats:\/\/\(.*\)"$/\1/p')"
  if [ "$(printf '%s\n' "$urls" | grep -c .)" = 1 ]; then target="$urls"
  elif [ -n "$urls" ]; then target="127.0.0.1:$(printf '%s\n' "$urls" | head -1 | sed 's/.*://')"; fi
fi
host="${target%:*}" port="${target##*:}"
# A wildcard or an IPv6 address: ask over loopback, which a server bound to all addresses accepts.
case "$host" in 0.0.0.0|\[*|*:*) host=127.0.0.1 ;; esac
if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then echo "nats-healthcheck: nothing accepts connections at $host:$port"; exit 1; fi
if ! timeout 3 head -c 4 <&3 | grep -q INFO; then echo "nats-healthcheck: $host:$port accepted a connection but sent no INFO line: not a NATS server"; exit 1; fi
echo "nats-healthcheck: nats-server at $host:$port accepts clients"
