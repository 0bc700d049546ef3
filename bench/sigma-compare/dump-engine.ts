// Dumps which events each Sigma rule of SentinelIQ's engine matches, for compare.py.
// Usage: npx tsx bench/sigma-compare/dump-engine.ts OUT.json
// Reads the rules of SIGMA_DIR (default ../shared/data/sigma-rules) and the events of EVENTS_DIR
// (default ../shared/data/windows-events/*.ndjson.gz). An event's index counts every non-blank
// line of the files in name order, as compare.py does, so the two sides name the same events.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DetectionEngine } from '../../src/modules/detect/engine.js';
import { loadMapping } from '../../src/modules/detect/mapping.js';
import { readRuleTree } from '../../src/modules/detect/rules/import.js';
import { normalize } from '../../src/modules/ingest/normalize.js';

const shared = resolve(import.meta.dirname, '../../../shared/data');
const sigmaDir = process.env.SIGMA_DIR ?? join(shared, 'sigma-rules');
const eventsDir = process.env.EVENTS_DIR ?? join(shared, 'windows-events');
const out = process.argv[2];
if (!out) {
  console.error('usage: npx tsx bench/sigma-compare/dump-engine.ts OUT.json');
  process.exit(2);
}
if (!existsSync(sigmaDir) || !existsSync(eventsDir)) {
  console.log(`skipped: ${sigmaDir} or ${eventsDir} not found`);
  process.exit(0);
}

const engine = new DetectionEngine(loadMapping());
const imported = readRuleTree(sigmaDir, engine.compileContext());
const keyOf = (r: { file: string; index: number }) => `${r.file}#${r.index}`;
engine.load(imported.rules.map((r) => ({ key: keyOf(r), doc: r.doc, severity: r.doc.level })));

const rules: Record<string, { id: string | null; title: string; kind: string; matches: number[] }> = {};
for (const r of imported.rules) {
  rules[keyOf(r)] = { id: r.doc.id ?? null, title: r.doc.title, kind: r.doc.kind, matches: [] };
}

let index = 0;
let unparsed = 0;
const received = new Date();
for (const file of readdirSync(eventsDir).filter((f) => f.endsWith('.ndjson.gz')).sort()) {
  for (const line of gunzipSync(readFileSync(join(eventsDir, file))).toString('utf8').split('\n')) {
    if (!line.trim()) continue;
    const i = index++;
    let doc: Record<string, unknown>;
    try {
      doc = normalize(JSON.parse(line) as Record<string, unknown>, 'sigma-compare', received).doc;
    } catch {
      unparsed++;
      continue;
    }
    for (const m of engine.match(doc)) rules[m.rule.key]?.matches.push(i);
  }
}

const rejected = imported.rejected.map((r) => ({ key: keyOf(r), reason: r.reason, message: r.message, id: r.id ?? null, title: r.title ?? null }));
writeFileSync(out, JSON.stringify({ events: index, unparsed, rules, rejected }));
console.log(`engine: ${imported.rules.length} documents loaded, ${rejected.length} rejected; ${index} events (${unparsed} not normalised) → ${out}`);
