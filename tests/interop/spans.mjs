// What the interop heads (client.mjs, browser/page.mjs) record about their own spans.
//
// `recordSpans(client)` starts recording; `clientSpan` then names the `fetch` instrumentation's
// `http.client` span among those started under the head's root span: the one whose id goes out
// in `sentry-trace`, and so the parent the next service must name. An unsampled head's spans are
// non-recording (no op, no end event), so then the only span started under the root is taken.
// `ended` waits until that span has ended, so a flush afterwards sends it: in a browser the
// fetch span ends after the body is read, which can be after its parent ended.
export function recordSpans(client) {
  const started = [];
  const ended = new Set();
  const waiters = [];
  client.on('spanStart', span => started.push(span));
  client.on('spanEnd', span => {
    ended.add(span.spanContext().spanId);
    for (const waiter of waiters.splice(0)) waiter();
  });
  return {
    startedUnder(root) {
      return started.filter(span => span !== root);
    },
    async ended(spanId, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!ended.has(spanId) && Date.now() < deadline) {
        await new Promise(resolve => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return ended.has(spanId);
    },
  };
}

export function clientSpan(Sentry, children) {
  const spans = children.map(span => {
    const json = Sentry.spanToJSON(span);
    const op = json.op ?? json.attributes?.['sentry.op'] ?? json.data?.['sentry.op'] ?? null;
    return { span_id: span.spanContext().spanId, op };
  });
  const http = spans.filter(s => s.op === 'http.client');
  const chosen = http.length === 1 ? http[0] : spans.length === 1 ? spans[0] : null;
  return { client_span_id: chosen ? chosen.span_id : null, child_spans: spans };
}
