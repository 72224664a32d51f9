// The Node reference gateway for scripts/bench_gateway.py: Express and the official `pusher`
// package answering POST /realtime/auth exactly as pusher-js expects (form-encoded socket_id and
// channel_name in, {"auth": ...} out). Like the minimal auth server of a typical setup guide it
// checks no identity at all: every channel is signed for one fixed user (123, "Ada"), the same
// user the rtctl side signs for after verifying its JWT.
//
//   PUSHER_APP_ID=1 PUSHER_APP_KEY=k PUSHER_APP_SECRET=s PORT=8090 node server.mjs
import express from "express";
import Pusher from "pusher";

const pusher = new Pusher({
  appId: process.env.PUSHER_APP_ID,
  key: process.env.PUSHER_APP_KEY,
  secret: process.env.PUSHER_APP_SECRET,
  host: process.env.REALTIME_HOST || "127.0.0.1",
  port: process.env.REALTIME_PORT || "6001",
  useTLS: false,
});
const user = { user_id: "123", user_info: { name: "Ada" } };

const app = express();
app.disable("x-powered-by");
app.use(express.urlencoded({ extended: false, limit: "4kb" }));

app.post("/realtime/auth", (req, res) => {
  const { socket_id: socketId, channel_name: channel } = req.body ?? {};
  if (typeof socketId !== "string" || typeof channel !== "string") {
    res.status(400).json({ error: "socket_id and channel_name are required" });
    return;
  }
  try {
    const presence = channel.startsWith("presence-");
    res.json(pusher.authorizeChannel(socketId, channel, presence ? user : undefined));
  } catch (error) {
    res.status(400).json({ error: String(error.message ?? error) });
  }
});

app.get("/realtime/health", (req, res) => res.json({ status: "ok" }));

const port = Number(process.env.PORT || 8090);
const server = app.listen(port, "127.0.0.1", () => {
  console.error(`node reference gateway on http://127.0.0.1:${port}/realtime/auth`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
