// ZeroMQ transport (this folder is the only place that imports `zeromq`). A ROUTER the coordinator binds and a DEALER
// each worker connects, both carrying multipart messages (see src/protocol/wire.ts). Sends are serialised
// through a small explicit queue (zeromq v6 refuses a second concurrent send); the ROUTER waits for a busy
// peer on its own, per peer (see RouterChannel.send), instead of failing; sends are checked against the size
// limit BEFORE sending (ZeroMQ silently drops a message over the receiver's maxMessageSize and resets the
// connection), and Buffers over 128 bytes go out without a copy.
//
// Security (optional): ZeroMQ CURVE. The coordinator's ROUTER is a CURVE server that admits only the client
// public keys it was given — a ZAP handler (RFC 27) in this process answers libzmq's question "may this key
// connect?" — and every refused handshake (unknown client key, wrong server key, a peer without CURVE) is
// reported through `onAuthFailure` (from the ZAP handler and the socket's monitor events). A worker's DEALER
// is a CURVE client; `handshakeTrouble()` tells the caller that its handshakes keep failing.
export type { CurveKeyPair, CurveServerKeys, CurveClientKeys, AuthFailure, ChannelOptions, RouterOptions, DealerOptions, HandshakeTrouble, Incoming } from "./types.js";
export { newCurveKeyPair, isZ85Key } from "./keys.js";
export { RouterChannel } from "./router.js";
export { DealerChannel } from "./dealer.js";
