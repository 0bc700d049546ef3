// Runs every benchmark in bench/ one after another (each in its own process, so one's memory
// and JIT state do not colour the next). `npm run bench -- sigma` runs only names containing "sigma".
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const filter = process.argv[2];
const benches = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'run.ts' && (!filter || f.includes(filter))).sort();
let failed = 0;
for (const file of benches) {
  console.log(`\n== ${file}`);
  const result = spawnSync(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', `${dir}${file}`], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
