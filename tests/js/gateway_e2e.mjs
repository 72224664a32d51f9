// A browser-like pusher-js 8.6.0 client (Node build) that authorizes through the rtctl gateway.
//
// Configured like the pusher-js snippet of the Realtime setup guide: wsHost/wsPort of Soketi, ws transport only, and
// channelAuthorization pointing at the gateway with the user's bearer token. The Node build's
// 'ajax' transport is a bundled XMLHttpRequest (node-XMLHttpRequest), so it posts the same
// form-encoded socket_id/channel_name a browser does.
//
// Input (env): KEY, WS_HOST, WS_PORT, AUTH_ENDPOINT, USER_AUTH_ENDPOINT, TOKEN, CHANNELS (comma list),
//              EXPECT_EVENTS (stop after this many events), SIGNIN=1 to call pusher.signin(),
//              TIMEOUT_MS.
// Output: one JSON line per happening on stdout: connected, subscribed, subscription_error,
//         members, signin, event, done/timeout.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Pusher = require('pusher-js');

const env = process.env;
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const auth = { Authorization: `Bearer ${env.TOKEN}` };

const pusher = new Pusher(env.KEY, {
  cluster: 'mt1',
  wsHost: env.WS_HOST,
  wsPort: Number(env.WS_PORT),
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
  channelAuthorization: { endpoint: env.AUTH_ENDPOINT, transport: 'ajax', headers: auth },
  userAuthentication: { endpoint: env.USER_AUTH_ENDPOINT, transport: 'ajax', headers: auth },
});

const expected = Number(env.EXPECT_EVENTS || '1');
let events = 0;
const finish = (type, code) => {
  say({ type });
  pusher.disconnect();
  setTimeout(() => process.exit(code), 50);
};
setTimeout(() => finish('timeout', 3), Number(env.TIMEOUT_MS || '20000'));

pusher.connection.bind('connected', () => {
  say({ type: 'connected', socket_id: pusher.connection.socket_id });
  if (env.SIGNIN === '1') pusher.signin();
});
pusher.connection.bind('message', (message) => {
  if (message.event === 'pusher:signin_success') {
    say({ type: 'signin', user_data: message.data.user_data });
  }
});
pusher.user.bind('pusher:signin_error', (err) => {
  say({ type: 'signin_error', status: err.status, error: err.error });
});

for (const name of (env.CHANNELS || '').split(',').filter(Boolean)) {
  const channel = pusher.subscribe(name);
  channel.bind('pusher:subscription_succeeded', (members) => {
    say({ type: 'subscribed', channel: name });
    if (name.startsWith('presence-')) {
      say({ type: 'members', channel: name, count: members.count, me: members.me });
    }
  });
  channel.bind('pusher:subscription_error', (err) => {
    say({ type: 'subscription_error', channel: name, status: err.status, error: err.error });
  });
  channel.bind_global((event, data) => {
    if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
    say({ type: 'event', channel: name, event, data });
    events += 1;
    if (events >= expected) finish('done', 0);
  });
}
