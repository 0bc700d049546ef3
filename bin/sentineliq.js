#!/usr/bin/env -S node --max-semi-space-size=64
// Semi-spaces of 64 MB (default 16): ingestion allocates many short-lived objects per event,
// and in a small young generation more of them survive a scavenge and are copied or promoted.
// The ingest benchmark runs about 10 % faster with it (bench/RESULTS.md).
// Runs the compiled CLI when `npm run build` has produced dist/, otherwise the TypeScript
// sources through tsx, so a fresh clone needs nothing but `npm ci`.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = `${root}dist/main.js`;
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(`${root}src/main.ts`).href);
}
