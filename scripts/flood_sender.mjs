// A fast client-event flood for scripts/bench_listen.py: one raw `ws` socket (the library
// pusher-js uses in Node) subscribes to a private channel, signed with the app secret, and sends
// N pre-serialised client events as fast as the socket takes them (no per-event pusher-js work),
// so the receivers, not the sender, set the pace. Each event's data is {"i": <0-based n>}.
// Usage: node flood_sender.mjs '{"host","port","key","secret","channel","count","event"?}'
// Prints {"sent": n, "seconds": s}; exit 1 on any failure.
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'js', 'package.json'));
const WebSocket = require('ws');

const opts = JSON.parse(process.argv[2]);
const event = opts.event ?? 'client-flood';
const fail = (message) => {
  process.stderr.write(`flood_sender: ${message}\n`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), (opts.timeout ?? 60) * 1000).unref();

const ws = new WebSocket(`ws://${opts.host}:${opts.port}/app/${opts.key}?protocol=7&client=flood&version=1`);
ws.on('error', (err) => fail(String(err)));
ws.on('message', (raw) => {
  const message = JSON.parse(raw.toString());
  if (message.event === 'pusher:connection_established') {
    const socketId = JSON.parse(message.data).socket_id;
    const sig = createHmac('sha256', opts.secret).update(`${socketId}:${opts.channel}`).digest('hex');
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: opts.channel, auth: `${opts.key}:${sig}` } }));
  } else if (message.event === 'pusher_internal:subscription_succeeded') {
    flood();
  } else if (message.event === 'pusher:error' || message.event === 'pusher:subscription_error') {
    fail(raw.toString());
  }
});

function flood() {
  const started = process.hrtime.bigint();
  let i = 0;
  const step = () => {
    // Hand frames to the socket in slices, letting its buffer drain between them.
    while (i < opts.count && ws.bufferedAmount < 1 << 20) {
      ws.send(`{"event":"${event}","channel":"${opts.channel}","data":{"i":${i}}}`);
      i += 1;
    }
    if (i < opts.count || ws.bufferedAmount > 0) return setImmediate(step);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(`${JSON.stringify({ sent: opts.count, seconds })}\n`);
    setTimeout(() => { ws.close(); process.exit(0); }, 50);
  };
  step();
}
