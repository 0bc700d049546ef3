// Regenerates README.md's settings table and docs/errors.md from their sources of truth.
import { readFileSync, writeFileSync } from 'node:fs';
import { errorsDoc, replaceSettingsBlock } from '../src/config/docs.js';

const root = new URL('../', import.meta.url);
const readme = new URL('README.md', root);
writeFileSync(readme, replaceSettingsBlock(readFileSync(readme, 'utf8')));
writeFileSync(new URL('docs/errors.md', root), errorsDoc());
console.log('README.md settings table and docs/errors.md regenerated.');
