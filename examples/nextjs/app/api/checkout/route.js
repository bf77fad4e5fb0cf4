// POST /api/checkout: reads an item from the FastAPI example (examples/fastapi_app). @sentry/nextjs
// traces the request and the fetch, and sends sentry-trace + baggage to the API, so the Python
// transaction lands in the same trace as a child of this fetch span.
const apiUrl = process.env.API_URL || "http://127.0.0.1:8000";

export async function POST() {
  const response = await fetch(`${apiUrl}/items/1`, { cache: "no-store" });
  const item = await response.json();
  return Response.json({ item }, { status: response.ok ? 200 : 502 });
}
