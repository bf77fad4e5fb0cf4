import * as Sentry from "@sentry/nextjs";

export async function register() {
  if (process.env.NEXT_RUNTIME === "nodejs") {
    await import("./sentry.server.config.js");
  }
}

// Errors thrown while rendering or in route handlers become Sentry issues.
export const onRequestError = Sentry.captureRequestError;
