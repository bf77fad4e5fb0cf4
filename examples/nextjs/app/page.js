"use client";

import { useState } from "react";

export default function Home() {
  const [result, setResult] = useState("");

  async function checkout() {
    const response = await fetch("/api/checkout", { method: "POST" });
    setResult(`${response.status} ${await response.text()}`);
  }

  return (
    <main>
      <h1>otel-sentry Next.js example</h1>
      <button type="button" onClick={checkout}>
        Checkout
      </button>
      <pre id="result">{result}</pre>
    </main>
  );
}
