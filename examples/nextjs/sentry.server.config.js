// Sentry for the Next.js server (route handlers, server components), loaded by instrumentation.js.
import * as Sentry from "@sentry/nextjs";

const apiUrl = process.env.API_URL || "http://127.0.0.1:8000";

Sentry.init({
  dsn: process.env.SENTRY_DSN,
  environment: process.env.SENTRY_ENVIRONMENT,
  release: process.env.SENTRY_RELEASE,
  tracesSampleRate: 1.0,
  // sentry-trace + baggage go to the Python API, which continues the trace.
  tracePropagationTargets: [new URL(apiUrl).origin],
});
