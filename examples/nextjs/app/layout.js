// Read at request time, so one build works with any DSN (see instrumentation-client.js).
export const dynamic = "force-dynamic";

export const metadata = { title: "otel-sentry Next.js example" };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <head>
        {process.env.SENTRY_DSN && <meta name="sentry-dsn" content={process.env.SENTRY_DSN} />}
        {process.env.API_URL && <meta name="api-url" content={process.env.API_URL} />}
      </head>
      <body>{children}</body>
    </html>
  );
}
