import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Logger } from '../../platform/log/logger.js';
import type { IncidentService } from '../incidents/service.js';
import type { AccessContext, Evidence, EvidenceService } from './service.js';

/** A file name safe in an archive and in `sha256sum` output: letters, digits, `._-`, at most 100 characters. */
export function archiveName(filename: string): string {
  const cleaned = filename.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100);
  return cleaned || 'file';
}

const json = (value: unknown) => Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');

/**
 * One incident as a gzip-compressed tar archive, streamed: everything sits under
 * `incident-<id>/` — incident.json (with tasks, comments and the evidence records),
 * timeline.json, alerts.json, events.json (the events the linked alerts reference),
 * observables.json, evidence/<evidenceId>/<name> (the bytes), custody/<evidenceId>.json (each
 * chain, this export's entry included) and SHA256SUMS last, in `sha256sum -c` format, covering
 * every other file. Evidence lines carry the SHA-256 recorded at upload, so a file altered in
 * storage fails `sha256sum -c` for whoever receives the archive; the export also hashes the bytes
 * as it streams them and records a mismatch on the chain.
 */
export async function exportIncident(deps: { incidents: IncidentService; evidence: EvidenceService; logger: Logger }, workspaceId: string, incidentId: string, ctx: AccessContext): Promise<{ filename: string; stream: Readable; exportId: string }> {
  const exportId = randomUUID();
  // Custody first (and the timeline entry), so the archive's chains and timeline include this export.
  const items = await deps.evidence.recordExport(workspaceId, incidentId, ctx, exportId);
  const data = await deps.incidents.exportData(workspaceId, incidentId);
  const root = `incident-${incidentId}`;
  const exportedAt = new Date();
  const paths = new Map<string, string>();
  for (const { evidence } of items) if (!evidence.deletedAt) paths.set(evidence.id, `evidence/${evidence.id}/${archiveName(evidence.filename)}`);
  const evidenceRecords = items.map(({ evidence }) => ({ ...evidence, archivePath: paths.get(evidence.id) ?? null, custodyPath: `custody/${evidence.id}.json` }));

  const pack = tar.pack();
  const gzip = createGzip();
  const out = new PassThrough();
  pack.on('error', (err: Error) => out.destroy(err));
  gzip.on('error', (err: Error) => out.destroy(err));
  pack.pipe(gzip).pipe(out);

  const sums: Array<[string, string]> = [];
  const header = (name: string, size: number) => ({ name: `${root}/${name}`, size, mode: 0o644, mtime: exportedAt, type: 'file' as const });
  const addBuffer = (name: string, buffer: Buffer) =>
    new Promise<void>((resolve, reject) => {
      sums.push([createHash('sha256').update(buffer).digest('hex'), name]);
      pack.entry(header(name, buffer.length), buffer, (err) => (err ? reject(err) : resolve()));
    });
  const addEvidence = (name: string, evidence: Evidence, source: Readable) =>
    new Promise<{ sha256: string; size: number }>((resolve, reject) => {
      const hash = createHash('sha256');
      let size = 0;
      const entry = pack.entry(header(name, evidence.size), (err) => (err ? reject(err) : resolve({ sha256: hash.digest('hex'), size })));
      source.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      source.once('error', (err: Error) => {
        entry.destroy(err);
        reject(err);
      });
      source.pipe(entry);
    });

  const write = async () => {
    await addBuffer('incident.json', json({ exportId, exportedAt: exportedAt.toISOString(), exportedBy: { userId: ctx.userId ?? null, email: ctx.email ?? null, apiKeyId: ctx.apiKeyId ?? null }, incident: data.incident, evidence: evidenceRecords }));
    await addBuffer('timeline.json', json(data.timeline));
    await addBuffer('alerts.json', json(data.alerts));
    await addBuffer('events.json', json(data.events));
    await addBuffer('observables.json', json(data.observables));
    for (const { evidence } of items) {
      const name = paths.get(evidence.id);
      if (!name) continue;
      const source = await deps.evidence.openForExport(workspaceId, evidence);
      const actual = await addEvidence(name, evidence, source);
      // The manifest states what was recorded at upload: altered bytes fail `sha256sum -c`.
      sums.push([evidence.sha256, name]);
      if (actual.sha256 !== evidence.sha256 || actual.size !== evidence.size) {
        await deps.evidence.recordMismatch({ id: evidence.id, workspace_id: workspaceId, incident_id: incidentId, filename: evidence.filename, sha256: evidence.sha256, size: evidence.size }, ctx, 'export', actual.sha256, actual.size);
      }
    }
    for (const { evidence, entries } of items) {
      await addBuffer(`custody/${evidence.id}.json`, json({ evidenceId: evidence.id, sha256: evidence.sha256, size: evidence.size, filename: evidence.filename, deletedAt: evidence.deletedAt, hashAlgorithm: 'sha256(prevHash + "\\n" + canonicalJson(entry without prevHash and hash)); first prevHash is 64 zeros', entries }));
    }
    const manifest = Buffer.from(sums.map(([sum, name]) => `${sum}  ${name}\n`).join(''), 'utf8');
    await new Promise<void>((resolve, reject) => pack.entry(header('SHA256SUMS', manifest.length), manifest, (err) => (err ? reject(err) : resolve())));
    pack.finalize();
  };
  write().catch((err: unknown) => {
    deps.logger.error({ component: 'evidence', err, workspaceId, incidentId, exportId }, 'incident export failed while streaming; the archive is incomplete');
    pack.destroy(err as Error);
    out.destroy(err as Error);
  });
  return { filename: `${root}.tar.gz`, stream: out, exportId };
}
