import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { unzipSync } from 'fflate';
import { SiqError } from '../../../errors.js';
import { parseSigmaYaml, type SigmaDocument } from '../sigma/rule.js';
import type { CompileContext } from '../sigma/values.js';

/**
 * Reading Sigma rules from a directory tree, a zip archive or single YAML texts. Each document
 * succeeds or fails on its own: a rejected rule is reported with its file, position, reason and
 * message, and never keeps the others out.
 */

export interface ImportedRule {
  file: string;
  /** Position of the document in a multi-document file. */
  index: number;
  doc: SigmaDocument;
  /** The document's YAML text (kept as the rule's source). */
  source: string;
}

export interface RejectedRule {
  file: string;
  index: number;
  reason: string;
  message: string;
  title?: string;
  id?: string;
}

export interface ImportResult {
  files: number;
  rules: ImportedRule[];
  rejected: RejectedRule[];
}

const RULE_FILE = /\.ya?ml$/i;
/** Limits for archives: a rule is a few kilobytes; these keep a zip bomb out. */
const MAX_FILE_BYTES = 1024 * 1024;
const MAX_ARCHIVE_BYTES = 200 * 1024 * 1024;
const MAX_FILES = 20_000;

/** Splits a multi-document YAML text into the texts of its documents. */
function documentTexts(text: string): string[] {
  return text.split(/^---[ \t]*$/m);
}

export function importYamlText(file: string, text: string, ctx: CompileContext = {}, into: ImportResult = { files: 0, rules: [], rejected: [] }): ImportResult {
  into.files++;
  const parts = documentTexts(text);
  for (const parsed of parseSigmaYaml(text, ctx)) {
    if (parsed.ok) {
      into.rules.push({ file, index: parsed.index, doc: parsed.rule, source: (parts.length > 1 ? parts[parsed.index] ?? text : text).trim() + '\n' });
    } else {
      const { ok: _ok, ...rest } = parsed;
      into.rejected.push({ file, ...rest });
    }
  }
  return into;
}

/** Every `.yml`/`.yaml` file under a directory, in a stable order. */
export function readRuleTree(dir: string, ctx: CompileContext = {}): ImportResult {
  const result: ImportResult = { files: 0, rules: [], rejected: [] };
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && RULE_FILE.test(entry.name)) {
        const file = relative(dir, full);
        if (statSync(full).size > MAX_FILE_BYTES) {
          result.files++;
          result.rejected.push({ file, index: 0, reason: 'too_large', message: `the file is larger than ${MAX_FILE_BYTES} bytes` });
          continue;
        }
        importYamlText(file, readFileSync(full, 'utf8'), ctx, result);
      }
    }
  };
  walk(dir);
  return result;
}

/** Every `.yml`/`.yaml` entry of a zip archive (a SigmaHQ release, for instance). */
export function readRuleZip(zip: Uint8Array, ctx: CompileContext = {}): ImportResult {
  const result: ImportResult = { files: 0, rules: [], rejected: [] };
  let total = 0;
  let count = 0;
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip, {
      filter: (file) => {
        if (!RULE_FILE.test(file.name) || file.name.split('/').some((p) => p.startsWith('.'))) return false;
        if (++count > MAX_FILES) throw new SiqError('SIQ_RULE_ARCHIVE_INVALID', `The archive holds more than ${MAX_FILES} rule files.`);
        if (file.originalSize > MAX_FILE_BYTES) {
          result.files++;
          result.rejected.push({ file: file.name, index: 0, reason: 'too_large', message: `the file is larger than ${MAX_FILE_BYTES} bytes` });
          return false;
        }
        total += file.originalSize;
        if (total > MAX_ARCHIVE_BYTES) throw new SiqError('SIQ_RULE_ARCHIVE_INVALID', `The archive unpacks to more than ${MAX_ARCHIVE_BYTES} bytes of rules.`);
        return true;
      },
    });
  } catch (err) {
    if (err instanceof SiqError) throw err;
    throw new SiqError('SIQ_RULE_ARCHIVE_INVALID', `The file is not a readable zip archive: ${(err as Error).message}`);
  }
  for (const name of Object.keys(entries).sort()) {
    const bytes = entries[name]!;
    // Entries lie about their size at times; check what came out.
    if (bytes.length > MAX_FILE_BYTES) {
      result.files++;
      result.rejected.push({ file: name, index: 0, reason: 'too_large', message: `the file is larger than ${MAX_FILE_BYTES} bytes` });
      continue;
    }
    importYamlText(name, Buffer.from(bytes).toString('utf8'), ctx, result);
  }
  return result;
}
