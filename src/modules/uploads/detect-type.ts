import { fileTypeFromBuffer } from 'file-type';

/** What a file is, decided from its first bytes (never from its name or the client's Content-Type). */
export interface DetectedType {
  /** file-type's extension (`png`, `jpg`, `pdf`, `exe`, …), `txt` for plain text, `bin` when unknown. */
  ext: string;
  mime: string;
}

export type UploadPurpose = 'logo' | 'attachment' | 'evidence';
export const UPLOAD_PURPOSES: readonly UploadPurpose[] = ['logo', 'attachment', 'evidence'];

/** Bytes read before deciding the type; zip-based office documents need more than the magic number. */
export const SAMPLE_BYTES = 64 * 1024;

/** Image formats sharp re-encodes in the same format. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set(['png', 'jpg', 'webp', 'gif']);

export interface PurposeRule {
  /** Allowed detected extensions, or 'any' (evidence: malware samples are evidence too). */
  allowed: ReadonlySet<string> | 'any';
  /** Images are re-encoded, resized to fit this box and stripped of metadata; undefined: stored byte for byte. */
  imageMaxDimension?: number;
  /** Objects under the public prefix, served without a signature. */
  public: boolean;
}

/**
 * The per-purpose rules, as data. Size limits come from the settings (UPLOAD_*_MAX_BYTES).
 * Attachments exclude SVG (scriptable) and OLE compound files (`cfb`: old .doc/.xls, but also .msi
 * installers); executables and scripts are refused because they are not on the list.
 */
export const PURPOSE_RULES: Readonly<Record<UploadPurpose, PurposeRule>> = {
  logo: { allowed: new Set(['png', 'jpg', 'webp', 'gif']), imageMaxDimension: 512, public: true },
  attachment: {
    allowed: new Set(['png', 'jpg', 'webp', 'gif', 'pdf', 'txt', 'rtf', 'zip', 'docx', 'xlsx', 'pptx', 'odt', 'ods', 'odp']),
    imageMaxDimension: 4096,
    public: false,
  },
  evidence: { allowed: 'any', public: false },
};

const UNKNOWN: DetectedType = { ext: 'bin', mime: 'application/octet-stream' };

/**
 * Plain text: valid UTF-8 without NUL or control characters other than tab, line breaks, form
 * feed and escape. A multi-byte character cut by the end of the sample is allowed.
 */
export function looksLikeText(sample: Buffer, complete: boolean): boolean {
  if (sample.length === 0) return false;
  for (const byte of sample) {
    if (byte < 0x09 || (byte > 0x0d && byte < 0x20 && byte !== 0x1b) || byte === 0x7f) return false;
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    decoder.decode(sample, { stream: !complete });
    return true;
  } catch {
    return false;
  }
}

/** Detects the type from the start of a file; `complete` says whether the sample is the whole file. */
export async function detectType(sample: Buffer, complete: boolean): Promise<DetectedType> {
  const found = await fileTypeFromBuffer(sample);
  if (found) return { ext: found.ext, mime: found.mime };
  if (looksLikeText(sample, complete)) return { ext: 'txt', mime: 'text/plain' };
  return UNKNOWN;
}

export function isAllowed(purpose: UploadPurpose, type: DetectedType): boolean {
  const { allowed } = PURPOSE_RULES[purpose];
  return allowed === 'any' || allowed.has(type.ext);
}
