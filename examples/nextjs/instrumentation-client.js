// Sentry in the browser. NEXT_PUBLIC_* variables are inlined by `next build`; without one, the
// DSN the server was started with is read from the page (app/layout.js puts it in a <meta>).
import * as Sentry from "@sentry/nextjs";

const dsn =
  process.env.NEXT_PUBLIC_SENTRY_DSN ||
  document.querySelector('meta[name="sentry-dsn"]')?.getAttribute("content") ||
  undefined;
const apiUrl =
  process.env.NEXT_PUBLIC_API_URL ||
  document.querySelector('meta[name="api-url"]')?.getAttribute("content") ||
  "http://127.0.0.1:8000";

Sentry.init({
  dsn,
  tracesSampleRate: 1.0,
  // Same-origin calls (/api/checkout) always carry the trace; the API's origin is added for
  // direct calls (the API must allow the headers: otel_sentry.instrument.web.allow_trace_headers).
  tracePropagationTargets: [/^\//, new URL(apiUrl).origin],
});

export const onRouterTransitionStart = Sentry.captureRouterTransitionStart;
