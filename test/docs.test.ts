import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorsDoc, replaceSettingsBlock, SETTINGS_START } from '../src/config/docs.js';
import { settingsSchema } from '../src/config/schema.js';

const root = new URL('../', import.meta.url);

describe('generated documentation', () => {
  it('README.md opens with the two commands', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const head = readme.split('\n').slice(0, 30).join('\n');
    expect(head).toContain('npm ci && npm start');
    expect(head).toContain('npm test');
  });

  it('README.md settings table matches the config schema (run `npm run docs:config` when this fails)', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    expect(readme).toContain(SETTINGS_START);
    expect(replaceSettingsBlock(readme)).toBe(readme);
    for (const name of Object.keys(settingsSchema.properties)) expect(readme).toContain(`\`${name}\``);
  });

  it('docs/errors.md matches the error catalogue (run `npm run docs:config` when this fails)', () => {
    expect(readFileSync(new URL('docs/errors.md', root), 'utf8')).toBe(errorsDoc());
  });
});
