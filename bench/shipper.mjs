// The load generator of bench/ingest-search.ts, on its own thread (a worker) so that building
// and sending requests does not run on the server's event loop, as a real shipper would not.
// Plain JavaScript: a worker does not inherit the tsx loader.
import { parentPort, workerData } from 'node:worker_threads';

const { url, auth, docs, concurrency, per } = workerData;
let next = 0;
const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < docs.length) {
    const slice = docs.slice(next, (next += per));
    const body = `${slice.map((d) => `{"index":{}}\n${d}`).join('\n')}\n`;
    for (;;) {
      const res = await fetch(url, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-ndjson' }, body });
      if (res.status === 429 || res.status === 503) {
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const out = await res.json();
      if (out.errors) throw new Error('bulk errors');
      break;
    }
  }
}));
parentPort.postMessage({ seconds: (performance.now() - started) / 1000 });
