// A browser app calling an API on another origin with `fetch`, inside a span, as a click
// handler does. Configured by the page's query string:
//   dsn (required), api (the URL to call, required), rate (tracesSampleRate, default 1),
//   traceparent=1 (Sentry's `propagateTraceparent`).
// When done it sets `window.__interop` to what client.mjs prints, or to {error}.
import * as Sentry from '@sentry/browser';
import { clientSpan, recordSpans } from '../spans.mjs';

const params = new URLSearchParams(window.location.search);
const api = params.get('api');
const propagateTraceparent = params.get('traceparent') === '1';

async function run() {
  Sentry.init({
    dsn: params.get('dsn'),
    release: 'js-browser@1.0.0',
    environment: 'interop',
    tracesSampleRate: Number(params.get('rate') ?? '1'),
    propagateTraceparent,
    // Page loads and long tasks are not what this page is about: the span below is the head
    // of the trace and the fetch its only child.
    integrations: [
      Sentry.browserTracingIntegration({
        instrumentPageLoad: false,
        instrumentNavigation: false,
        enableLongTask: false,
        enableLongAnimationFrame: false,
      }),
    ],
    tracePropagationTargets: [new URL(api).origin],
  });
  const spans = recordSpans(Sentry.getClient());

  const result = await Sentry.startSpan({ name: 'browser-click', op: 'ui.action.click' }, async root => {
    const response = await fetch(api);
    const body = await response.json();
    const { traceId, spanId, traceFlags } = root.spanContext();
    return {
      sdk: `${Sentry.getClient().getSdkMetadata()?.sdk?.name}/${Sentry.SDK_VERSION}`,
      origin: window.location.origin,
      trace_id: traceId,
      root_span_id: spanId,
      sampled: (traceFlags & 1) === 1,
      head: Sentry.getTraceData({ propagateTraceparent }),
      status: response.status,
      body,
      ...clientSpan(Sentry, spans.startedUnder(root)),
    };
  });
  if (result.sampled && result.client_span_id) await spans.ended(result.client_span_id);
  await Sentry.flush(5000);
  return result;
}

run().then(
  result => {
    window.__interop = result;
    document.getElementById('status').textContent = 'done';
  },
  error => {
    // The message is what matters ("Failed to fetch" = CORS); the console says why.
    window.__interop = { error: String(error) };
    document.getElementById('status').textContent = 'failed';
  },
);
