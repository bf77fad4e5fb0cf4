// A Node service downstream of Python: a plain `http` server instrumented by @sentry/node.
//
//   SENTRY_DSN=... node server.mjs <port>
//
// Every answer is JSON: the trace headers that reached it and the trace identity of the span
// that serves the request, so the test can compare them with what Sentry received.
// When it listens it prints one line, `listening <port>`, on stdout.
import * as Sentry from '@sentry/node';

const port = Number(process.argv[2] ?? process.env.PORT);
if (!Number.isInteger(port) || !process.env.SENTRY_DSN) {
  console.error('usage: SENTRY_DSN=... node server.mjs <port>');
  process.exit(2);
}

Sentry.init({
  dsn: process.env.SENTRY_DSN,
  release: process.env.SENTRY_RELEASE || 'js-server@1.0.0',
  environment: process.env.SENTRY_ENVIRONMENT || 'interop',
  tracesSampleRate: Number(process.env.SENTRY_TRACES_SAMPLE_RATE ?? '1'),
});

// Imported after init(), as Sentry's docs ask, so the server is instrumented.
const http = await import('node:http');

const TRACE_HEADERS = ['sentry-trace', 'baggage', 'traceparent', 'tracestate'];

const server = http.createServer((req, res) => {
  const received = {};
  for (const name of TRACE_HEADERS) {
    if (req.headers[name] !== undefined) received[name] = req.headers[name];
  }
  const span = Sentry.getActiveSpan();
  const root = span ? Sentry.getRootSpan(span) : undefined;
  const json = root ? Sentry.spanToJSON(root) : undefined;
  const body = JSON.stringify({
    service: 'node',
    received,
    span: json
      ? {
          trace_id: json.trace_id,
          span_id: json.span_id,
          parent_span_id: json.parent_span_id ?? null,
          sampled: (root.spanContext().traceFlags & 1) === 1,
        }
      : null,
    trace_data: Sentry.getTraceData(),
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

async function stop() {
  server.close();
  await Sentry.flush(5000);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${port}\n`);
});
