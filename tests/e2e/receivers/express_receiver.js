// The original product's Express webhook receiver, run on node's own http module (no npm):
// express.json() reads the raw body and JSON.parse()s it into req.body; the handler then verifies
// the signature over JSON.stringify(req.body), exactly as the original's documentation shows.
// Usage: node express_receiver.js <secret>. Prints {"port": N} once listening, then one JSON line
// per request: {"uid", "status", "verified", "code"}.
const http = require("http");
const crypto = require("crypto");

const SECRET = process.argv[2];

// ---- from the original documentation ------------------------------------------------------
function verifySignature(body, secret, signature) {
  const expected = "sha256=" + crypto.createHmac("sha256", secret)
    .update(body)
    .digest("hex");
  return crypto.timingSafeEqual(
    Buffer.from(expected),
    Buffer.from(signature),
  );
}
// --------------------------------------------------------------------------------------------

function expressJson(req, done) {  // what express.json() does for application/json bodies
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    try {
      req.body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      done(null);
    } catch (err) {
      done(err);
    }
  });
}

const server = http.createServer((req, res) => {
  expressJson(req, (err) => {
    if (err) {
      res.statusCode = 400;
      res.end();
      console.log(JSON.stringify({ verified: false, code: 400 }));
      return;
    }
    const sig = req.headers["x-webhook-signature"] || "";
    let verified = false;
    try {
      verified = verifySignature(JSON.stringify(req.body), SECRET, sig);
    } catch (e) {  // timingSafeEqual throws on a length mismatch: Express would answer 500
      verified = false;
    }
    const code = verified ? 200 : 401;
    res.statusCode = code;
    res.end(verified ? "OK" : "Invalid signature");
    console.log(JSON.stringify({ uid: req.body.uid, status: req.body.status, verified, code }));
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
