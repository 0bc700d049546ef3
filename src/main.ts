import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { ConfigError, loadConfig, type ConfigResult } from './config/load.js';
import { resolveSecrets } from './config/secrets.js';
import { readPackageVersion } from './config/version.js';
import { runDoctor } from './cli/doctor.js';
import { startCommand } from './cli/start.js';
import { createDatabase, migrate, migrationStatus } from './platform/db/index.js';
import { listChains, verifyChain } from './modules/audit/service.js';
import { AlertService } from './modules/alerts/service.js';
import { importYamlText, readRuleTree, readRuleZip } from './modules/detect/rules/import.js';
import { DetectionService } from './modules/detect/service.js';
import { IngestPipeline } from './modules/ingest/pipeline.js';
import { NotifyService } from './modules/notify/service.js';
import { ingestFile, type FileFormat } from './modules/ingest/sources/file.js';
import { archivedWorkspaces, restoreArchive, runRetention } from './modules/events/retention.js';
import { BackupService } from './modules/backup/service.js';
import { createPlatform, type Platform } from './platform/index.js';
import { createLogger } from './platform/log/logger.js';
import { deriveKey } from './platform/index.js';
import { createObjectStore } from './platform/objects/index.js';

/** Runs a command body on a connected platform (migrated), and closes it. */
async function withPlatform(fn: (platform: Platform) => Promise<void>): Promise<void> {
  const { config } = configOrExit();
  const platform = await createPlatform(config, createLogger({ level: 'warn', env: config.env, destination: process.stderr }));
  try {
    await fn(platform);
  } catch (err) {
    console.error((err as Error).message);
    process.exitCode = 1;
  } finally {
    await platform.close();
  }
}

/** Detection as the server runs it: alerts raised, notifications queued in the outbox. */
function detectionService(platform: Platform): DetectionService {
  const notify = new NotifyService(platform);
  const alerts = new AlertService(platform, { onRaised: (tx, notice) => notify.enqueueForAlert(tx, notice).then(() => undefined) });
  return new DetectionService(platform, alerts);
}

/** Loads the configuration or exits with one message that lists every problem. */
function configOrExit(): ConfigResult {
  const result = loadConfig();
  if (result.problems.length > 0) {
    console.error(new ConfigError(result.problems).message);
    process.exit(1);
  }
  return { ...result, config: resolveSecrets(result.config) };
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

const program = new Command()
  .name('sentineliq')
  .description('SentinelIQ: self-hosted security operations platform')
  .version(readPackageVersion(), '-v, --version');

program
  .command('start')
  .description('run the platform (HTTP API) until SIGTERM/SIGINT')
  .action(async () => {
    const { config, warnings } = configOrExit();
    await startCommand(config, warnings);
  });

program
  .command('migrate')
  .description('apply pending database migrations and print a status per migration')
  .option('--status', 'only show the status; apply nothing')
  .action(async (opts: { status?: boolean }) => {
    const { config } = configOrExit();
    const db = await createDatabase(config);
    try {
      const statuses = opts.status ? await migrationStatus(db) : await migrate(db);
      printTable([['MIGRATION', 'STATE', 'APPLIED AT', 'MS'], ...statuses.map((s) => [s.name, s.state, s.appliedAt?.toISOString() ?? '-', s.durationMs === undefined ? '-' : String(s.durationMs)])]);
      if (statuses.some((s) => s.state === 'changed' || s.state === 'missing')) process.exitCode = 1;
    } catch (err) {
      console.error(`migrate failed: ${(err as Error).message}`);
      process.exitCode = 1;
    } finally {
      await db.close();
    }
  });

program
  .command('doctor')
  .description('check the configuration and every dependency, and say how to fix what is wrong')
  .action(async () => {
    const checks = await runDoctor(loadConfig());
    for (const check of checks) {
      console.log(`${check.ok ? '✓' : '✗'} ${check.name}: ${check.detail}`);
      if (!check.ok && check.fix) console.log(`    fix: ${check.fix}`);
    }
    const failed = checks.filter((c) => !c.ok).length;
    console.log(failed === 0 ? '\nAll checks passed.' : `\n${failed} problem(s) found.`);
    process.exitCode = failed === 0 ? 0 : 1;
  });

program
  .command('setup-storage')
  .description('create the object storage buckets and allow public reads of public/ in the files bucket')
  .action(async () => {
    const { config } = configOrExit();
    const objects = createObjectStore({ env: config.env, dataDir: config.dataDir, publicUrl: config.publicUrl, signingKey: deriveKey(config, 'object-urls'), s3: config.s3 });
    try {
      const report = await objects.setup();
      for (const bucket of report.buckets) console.log(`${bucket.created ? 'created ' : 'exists  '} ${bucket.name} (${bucket.kind})`);
      const pr = report.publicRead;
      console.log(`${pr.applied ? 'public read granted on' : 'public read NOT applied on'} ${pr.bucket}/${pr.prefix}*${pr.note ? ` — ${pr.note}` : ''}`);
    } catch (err) {
      console.error(`setup-storage failed: ${(err as Error).message}`);
      process.exitCode = 1;
    } finally {
      await objects.close();
    }
  });

const audit = program.command('audit').description('the tamper-evident audit log');
audit
  .command('verify')
  .description('recompute every workspace\'s hash chain and name the first broken link')
  .option('--workspace <id>', 'only this workspace')
  .action(async (opts: { workspace?: string }) => {
    const { config } = configOrExit();
    const db = await createDatabase(config);
    try {
      const chains = opts.workspace ? [opts.workspace] : await listChains(db);
      let broken = 0;
      for (const workspaceId of chains) {
        const result = await verifyChain(db, workspaceId);
        if (result.ok) console.log(`✓ ${workspaceId}: ${result.checked} entries verify`);
        else {
          broken++;
          console.log(`✗ ${workspaceId}: first broken entry seq ${result.firstBroken!.seq}${result.firstBroken!.id ? ` (id ${result.firstBroken!.id})` : ''}: ${result.firstBroken!.reason} (${result.checked} entries before it verify)`);
        }
      }
      console.log(broken === 0 ? `${chains.length} chain(s) verified.` : `${broken} of ${chains.length} chain(s) are broken.`);
      process.exitCode = broken === 0 ? 0 : 1;
    } finally {
      await db.close();
    }
  });

const events = program.command('events').description('the event store');
events
  .command('retention')
  .description('run one retention pass now: archive and remove events past retention or over the disk budget')
  .action(async () => {
    await withPlatform(async (platform) => {
      const report = await runRetention(platform);
      for (const a of report.archived) console.log(`archived ${a.day} of ${a.workspaceId}: ${a.events} events`);
      for (const p of report.droppedPartitions) console.log(`dropped partition ${p}`);
      if (report.archived.length === 0 && report.droppedPartitions.length === 0) console.log('nothing past retention.');
    });
  });
events
  .command('restore-archive <day>')
  .description('bring an archived day (YYYY-MM-DD) back into the event store, after checking it against its manifest')
  .option('--workspace <id>', 'only this workspace (default: every workspace archived that day)')
  .action(async (day: string, opts: { workspace?: string }) => {
    await withPlatform(async (platform) => {
      const workspaces = opts.workspace ? [opts.workspace] : await archivedWorkspaces(platform, day);
      if (workspaces.length === 0) throw new Error(`no archive of ${day} found`);
      for (const workspaceId of workspaces) {
        const result = await restoreArchive(platform, workspaceId, day);
        console.log(`restored ${day} of ${workspaceId}: ${result.restored} events (${result.skipped} were already present)`);
      }
      console.log('Note: the next retention pass archives and removes them again unless the workspace\'s retention covers that day.');
    });
  });

program
  .command('ingest <files...>')
  .description('load NDJSON, JSON or syslog files (.gz too) into a workspace')
  .requiredOption('--workspace <id>', 'the workspace that receives the events')
  .option('--format <format>', 'ndjson | json | syslog (default: from the file name)')
  .action(async (files: string[], opts: { workspace: string; format?: FileFormat }) => {
    await withPlatform(async (platform) => {
      const known = /^[0-9a-f-]{36}$/i.test(opts.workspace) && (await platform.db.query('SELECT 1 FROM workspaces WHERE id = $1', [opts.workspace])).rows.length > 0;
      if (!known) throw new Error(`no workspace ${opts.workspace}`);
      // Files go through detection like any other source; notifications are queued for the server's worker.
      const detection = detectionService(platform);
      const pipeline = new IngestPipeline(platform, { maxQueuedEvents: platform.config.ingest.queueEvents, batchSize: platform.config.ingest.batchEvents, consumer: detection, maxConsumerBacklog: platform.config.detection.backlogEvents });
      const bar = new SingleBar({ format: '{file} |{bar}| {percentage}% | {stored} stored, {rejected} rejected', hideCursor: true, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 2000 }, Presets.shades_classic);
      let failed = false;
      for (const file of files) {
        const name = basename(file);
        bar.start(100, 0, { file: name, stored: 0, rejected: 0 });
        const result = await ingestFile(pipeline, opts.workspace, file, {
          format: opts.format,
          onProgress: (p) => bar.update(p.totalBytes ? Math.min(100, Math.round((100 * p.bytesRead) / p.totalBytes)) : 100, { stored: p.stored, rejected: p.rejected }),
        });
        bar.update(100, { stored: result.stored, rejected: result.rejected });
        bar.stop();
        console.log(`${file}: ${result.received} received, ${result.stored} stored, ${result.rejected} rejected`);
        failed ||= result.stored === 0 && result.received > 0;
      }
      await pipeline.close();
      await detection.idle();
      if (failed) process.exitCode = 1;
    });
  });

const rules = program.command('rules').description('detection rules');
rules
  .command('import <paths...>')
  .description('import Sigma rules into a workspace: directories (every .yml/.yaml below them), .zip archives (a SigmaHQ release) or single files; each rejected rule is listed with its reason, the others load')
  .requiredOption('-w, --workspace <id>', 'workspace that receives the rules')
  .option('--quiet', 'print only the totals')
  .action(async (paths: string[], opts: { workspace: string; quiet?: boolean }) => {
    await withPlatform(async (platform) => {
      const known = /^[0-9a-f-]{36}$/i.test(opts.workspace) && (await platform.db.query('SELECT 1 FROM workspaces WHERE id = $1', [opts.workspace])).rows.length > 0;
      if (!known) throw new Error(`no workspace ${opts.workspace}`);
      const detection = detectionService(platform);
      const ctx = await detection.compileContext(opts.workspace);
      const totals = { files: 0, created: 0, updated: 0, unchanged: 0, rejected: 0 };
      for (const path of paths) {
        const stat = statSync(path);
        const result = stat.isDirectory() ? readRuleTree(path, ctx) : path.toLowerCase().endsWith('.zip') ? readRuleZip(readFileSync(path), ctx) : importYamlText(basename(path), readFileSync(path, 'utf8'), ctx);
        const report = await detection.storeImport(opts.workspace, result, null);
        if (!opts.quiet) for (const r of report.rejected) console.log(`rejected ${join(stat.isDirectory() ? path : '', r.file)}${r.index ? ` (document ${r.index + 1})` : ''}: ${r.reason}: ${r.message}`);
        totals.files += report.files;
        totals.created += report.created;
        totals.updated += report.updated;
        totals.unchanged += report.unchanged;
        totals.rejected += report.rejected.length;
      }
      console.log(`${totals.files} files: ${totals.created} rules created, ${totals.updated} updated, ${totals.unchanged} unchanged, ${totals.rejected} rejected`);
    });
  });

program
  .command('backup')
  .description('back up the database and stored files now, verify the backup by a trial restore, apply retention')
  .action(async () => {
    await withPlatform(async (platform) => {
      const notify = new NotifyService(platform);
      const alerts = new AlertService(platform, { onRaised: (tx, notice) => notify.enqueueForAlert(tx, notice).then(() => undefined) });
      const result = await new BackupService(platform, { alerts }).run({ trigger: 'cli' });
      const m = result.manifest;
      console.log(`backup ${m.id}: ${Object.values(m.rowCounts).reduce((n, c) => n + c, 0)} rows, ${m.objects.count} objects (${m.objects.uploaded} new), ${m.parts.dump.size + m.parts.objects.size} bytes, schema ${m.schemaVersion}, key ${m.keyId}`);
      const v = result.verification;
      console.log(v.ok ? `verified: trial restore into ${v.scratch}, ${v.rows} rows, ${v.objectsChecked} objects` : `VERIFICATION FAILED: ${v.error?.code} ${v.error?.message}`);
      if (result.retention.deleted.length > 0) console.log(`retention deleted: ${result.retention.deleted.join(', ')}`);
      if (!v.ok) process.exitCode = 1;
    });
  });

program
  .command('restore [which]')
  .description('restore a backup: `restore list`, `restore latest` or `restore <id>` (into an empty database unless --drop-existing)')
  .option('--target-url <url>', 'PostgreSQL database to restore into (default: DATABASE_URL, or the embedded database in DATA_DIR)')
  .option('--drop-existing', 'drop and recreate the target\'s schema when it is not empty')
  .action(async (which: string | undefined, opts: { targetUrl?: string; dropExisting?: boolean }) => {
    const { config } = configOrExit();
    const logger = createLogger({ level: 'warn', env: config.env, destination: process.stderr });
    const objects = createObjectStore({ env: config.env, dataDir: config.dataDir, publicUrl: config.publicUrl, signingKey: deriveKey(config, 'object-urls'), s3: config.s3 });
    try {
      const service = new BackupService({ config, logger, objects });
      if (!which || which === 'list') {
        const items = await service.list();
        if (items.length === 0) console.log('no backups');
        else printTable([['ID', 'CREATED', 'SIZE', 'VERIFIED', 'SCHEMA', 'DATABASE', 'KEY'], ...items.map((b) => [b.id, b.createdAt, String(b.sizeBytes), b.verified === null ? '-' : b.verified ? 'yes' : 'FAILED', b.schemaVersion, b.database, b.keyId])]);
        return;
      }
      if (opts.targetUrl && !/^postgres(ql)?:\/\//.test(opts.targetUrl)) throw new Error('--target-url must be a postgres:// URL');
      const result = await service.restore(which, { targetUrl: opts.targetUrl, dropExisting: opts.dropExisting, onProgress: (line) => console.log(line) });
      console.log(`restored ${result.id} into ${result.target}: ${result.tables} tables, ${result.rows} rows, ${result.objects} objects`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      console.error(`restore failed${code?.startsWith('SIQ_') ? ` (${code})` : ''}: ${(err as Error).message}`);
      process.exitCode = 1;
    } finally {
      await objects.close();
    }
  });

program
  .command('version')
  .description('print the version')
  .action(() => console.log(readPackageVersion()));

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
