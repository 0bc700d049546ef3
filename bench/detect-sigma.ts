// Detection engine alone: load every rule of ../shared/data/sigma-rules, then stream the events of
// ../shared/data/windows-events through it on one core. Reports rules loaded versus rejected
// (reasons grouped) and events per second. `SIGMA_DIR` / `EVENTS_DIR` point elsewhere.
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DetectionEngine } from '../src/modules/detect/engine.js';
import { loadMapping } from '../src/modules/detect/mapping.js';
import { readRuleTree } from '../src/modules/detect/rules/import.js';
import { normalize } from '../src/modules/ingest/normalize.js';

const shared = resolve(import.meta.dirname, '../../shared/data');
const sigmaDir = process.env.SIGMA_DIR ?? join(shared, 'sigma-rules');
const eventsDir = process.env.EVENTS_DIR ?? join(shared, 'windows-events');
if (!existsSync(sigmaDir) || !existsSync(eventsDir)) {
  console.log(`skipped: ${sigmaDir} or ${eventsDir} not found`);
  process.exit(0);
}

const t0 = performance.now();
const engine = new DetectionEngine(loadMapping());
const imported = readRuleTree(sigmaDir, engine.compileContext());
const loadMs = performance.now() - t0;
engine.load(imported.rules.map((r, i) => ({ key: String(i), doc: r.doc, severity: r.doc.level })));
const reasons = new Map<string, number>();
for (const r of imported.rejected) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
const files = imported.files;
const filesWithRejects = new Set(imported.rejected.map((r) => r.file)).size;
console.log(`rules: ${imported.rules.length} documents loaded from ${files} files, ${imported.rejected.length} rejected (${filesWithRejects} files, ${(((files - filesWithRejects) / files) * 100).toFixed(1)}% of files fully loaded) in ${(loadMs / 1000).toFixed(1)} s`);
console.log(`  loaded: ${engine.size.rules} detection rules, ${engine.size.correlations} correlations; ${engine.unmapped.length} with a logsource outside the mapping`);
for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1])) console.log(`  rejected ${reason}: ${n}`);

// Events, normalised as ingestion does, held in memory so only the engine is measured.
const { readdirSync } = await import('node:fs');
const docs: Record<string, unknown>[] = [];
const received = new Date();
for (const file of readdirSync(eventsDir).filter((f) => f.endsWith('.ndjson.gz')).sort()) {
  for (const line of gunzipSync(readFileSync(join(eventsDir, file))).toString('utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      docs.push(normalize(JSON.parse(line) as Record<string, unknown>, 'bench', received).doc);
    } catch {
      // malformed lines are not the engine's business
    }
  }
}

let matches = 0;
const perRule = new Map<string, number>();
// Warm-up pass, then measured passes until at least 5 s.
for (const d of docs.slice(0, 2000)) engine.match(d);
let events = 0;
// CPU time as well as wall time: on a shared machine the wall clock also counts time the process
// waited for a core, while CPU time is what the engine cost this one core.
const cpuStart = process.cpuUsage();
const start = performance.now();
while (performance.now() - start < 5000) {
  for (const d of docs) {
    const m = engine.match(d);
    if (events < docs.length) {
      matches += m.length;
      for (const x of m) perRule.set(x.rule.doc.title, (perRule.get(x.rule.doc.title) ?? 0) + 1);
    }
    events++;
  }
}
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(`events: ${docs.length} Windows events; ${matches} rule matches on one pass (${perRule.size} distinct rules fired)`);
console.log(`throughput: ${Math.round(events / seconds).toLocaleString('en-US')} events/s on one core (${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}); ${Math.round(events / cpuSeconds).toLocaleString('en-US')} events per CPU-second`);
