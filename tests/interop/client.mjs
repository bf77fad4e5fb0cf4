// A Node service at the head of a trace: one `fetch` inside a span, as a user's code does it.
//
//   SENTRY_DSN=... node client.mjs <url>
//
// Environment: SENTRY_DSN (required), SENTRY_TRACES_SAMPLE_RATE (default 1), SENTRY_RELEASE,
// SENTRY_ENVIRONMENT, INTEROP_PROPAGATE_TRACEPARENT=1 for Sentry's `propagateTraceparent`.
// Prints one JSON line on stdout: the head's trace id, sampling decision and DSC, the id of the
// span the fetch instrumentation created (the parent the next service must name), and the answer.
import * as Sentry from '@sentry/node';
import { clientSpan, recordSpans } from './spans.mjs';

const url = process.argv[2];
if (!url || !process.env.SENTRY_DSN) {
  console.error('usage: SENTRY_DSN=... node client.mjs <url>');
  process.exit(2);
}

const propagateTraceparent = process.env.INTEROP_PROPAGATE_TRACEPARENT === '1';

Sentry.init({
  dsn: process.env.SENTRY_DSN,
  release: process.env.SENTRY_RELEASE || 'js-client@1.0.0',
  environment: process.env.SENTRY_ENVIRONMENT || 'interop',
  tracesSampleRate: Number(process.env.SENTRY_TRACES_SAMPLE_RATE ?? '1'),
  propagateTraceparent,
  tracePropagationTargets: [/127\.0\.0\.1/],
});
const spans = recordSpans(Sentry.getClient());

const result = await Sentry.startSpan({ name: 'js-client', op: 'function' }, async root => {
  const response = await fetch(url);
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const { traceId, spanId, traceFlags } = root.spanContext();
  return {
    sdk: `${Sentry.getClient().getSdkMetadata()?.sdk?.name}/${Sentry.SDK_VERSION}`,
    trace_id: traceId,
    root_span_id: spanId,
    sampled: (traceFlags & 1) === 1,
    // What the head propagates: `sentry-trace`, its DSC in `baggage` (and `traceparent`).
    head: Sentry.getTraceData({ propagateTraceparent }),
    status: response.status,
    body,
    ...clientSpan(Sentry, spans.startedUnder(root)),
  };
});

if (result.sampled && result.client_span_id) await spans.ended(result.client_span_id);
await Sentry.flush(5000);
process.stdout.write(`${JSON.stringify(result)}\n`);
