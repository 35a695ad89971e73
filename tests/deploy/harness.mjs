// What the deploy tests share: the official OpenAI Node client (openai 6.49.0, pinned in tests/oracle/package.json),
// a check that prints "ok   ..." / "FAIL ..." lines and counts failures, and a JSON POST for Flywheel's own routes.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "oracle", "package.json"));
export const OpenAI = require("openai").default ?? require("openai");

export function openaiClient(baseURL, apiKey = "none") {
  return new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 300000 });
}

let failures = 0;
export function check(ok, what, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok || !detail ? "" : ": " + detail}`);
  if (!ok) failures++;
}
export const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// POST a JSON body to ROOT + route; returns {status, body (parsed)}.
export async function post(root, route, body, headers = {}) {
  const r = await fetch(root + route, { method: "POST", headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

// Prints the summary line and exits 1 when a check failed.
export function report() {
  console.log(failures ? `${failures} check(s) failed` : "all checks passed");
  process.exit(failures ? 1 : 0);
}
