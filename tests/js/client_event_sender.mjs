// A real third-party client (pusher-js 8.6.0 in Node) that subscribes to a private or presence
// channel and sends client events, so tests and benchmarks can check what `rtctl listen` prints.
//
// Usage: node client_event_sender.mjs '<json options>'
//   {host, port, key, secret, channel, event="client-test", count=1, data={}, userId?, tls=false,
//    linger=0.05 (seconds to stay connected after the last frame left), timeout=60}
// The authorizer is a pusher-js customHandler that signs with the app secret (what an app's auth
// endpoint would do), so no HTTP server is needed. Each event's data is {...data, i: <0-based n>}.
// Prints one JSON line once Soketi has processed every event (a pusher:ping sent after the burst
// was answered): {"sent": n, "socket_id": "...", "seconds": s}; exit 1 on any failure.
import { createHmac } from 'node:crypto';
import Pusher from 'pusher-js';

const opts = JSON.parse(process.argv[2]);
const eventName = opts.event ?? 'client-test';
const count = opts.count ?? 1;
const baseData = opts.data ?? {};

function sign(text) {
  return createHmac('sha256', opts.secret).update(text).digest('hex');
}

const fail = (message) => {
  process.stderr.write(`client_event_sender: ${message}\n`);
  process.exit(1);
};
setTimeout(() => fail('timed out'), (opts.timeout ?? 60) * 1000).unref();

const pusher = new Pusher(opts.key, {
  cluster: 'mt1',
  wsHost: opts.host,
  wsPort: opts.port,
  wssPort: opts.port,
  forceTLS: Boolean(opts.tls),
  enabledTransports: ['ws'],
  disableStats: true,
  channelAuthorization: {
    customHandler: ({ socketId, channelName }, callback) => {
      if (channelName.startsWith('presence-')) {
        const channelData = JSON.stringify({ user_id: String(opts.userId ?? 'sender') });
        const auth = `${opts.key}:${sign(`${socketId}:${channelName}:${channelData}`)}`;
        callback(null, { auth, channel_data: channelData });
      } else {
        callback(null, { auth: `${opts.key}:${sign(`${socketId}:${channelName}`)}` });
      }
    },
  },
});

pusher.connection.bind('error', (err) => fail(`connection error: ${JSON.stringify(err)}`));
const channel = pusher.subscribe(opts.channel);
channel.bind('pusher:subscription_error', (err) => fail(`subscription error: ${JSON.stringify(err)}`));
channel.bind('pusher:subscription_succeeded', () => {
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i += 1) {
    if (!channel.trigger(eventName, { ...baseData, i })) fail(`trigger ${i} refused`);
  }
  const socket = pusher.connection.socket_id;
  const conn = pusher.connection.connection;
  // Soketi handles a socket's frames in order, so its pong to a ping sent after the burst means
  // every client event was processed. Leaving earlier loses the ones still queued in Soketi.
  conn.bind('pong', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(`${JSON.stringify({ sent: count, socket_id: socket, seconds })}\n`);
    setTimeout(() => {
      pusher.disconnect();
      process.exit(0);
    }, (opts.linger ?? 0.05) * 1000);
  });
  conn.send_event('pusher:ping', {});
});

