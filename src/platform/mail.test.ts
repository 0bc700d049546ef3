import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/load.js';
import { createLogger } from './log/logger.js';
import { createMailer } from './mail.js';

describe('mailer', () => {
  it('sends through SMTP when SMTP_URL is set', async () => {
    const received: string[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, callback) {
        let data = '';
        stream.on('data', (d: Buffer) => (data += d.toString()));
        stream.on('end', () => {
          received.push(data);
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.server.address() as AddressInfo;
    try {
      const { config } = loadConfig({ SMTP_URL: `smtp://127.0.0.1:${port}`, SMTP_FROM: 'SIQ <siq@example.test>' });
      const mailer = createMailer(config, createLogger({ level: 'silent', env: 'test' }));
      const result = await mailer.send({ to: 'analyst@example.test', subject: 'You are invited', text: 'Accept: https://siq.example/invitations/accept#abc' });
      expect(result.delivered).toBe(true);
      expect(received).toHaveLength(1);
      expect(received[0]).toContain('To: analyst@example.test');
      expect(received[0]).toContain('Subject: You are invited');
      expect(received[0]).toContain('invitations/accept#abc');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('writes the mail to the log when SMTP is not configured', async () => {
    let logged = '';
    const destination = new Writable({ write: (chunk: Buffer, _e, cb) => ((logged += chunk.toString()), cb()) });
    const { config } = loadConfig({});
    const mailer = createMailer(config, createLogger({ level: 'info', env: 'test', destination }));
    expect((await mailer.send({ to: 'x@example.test', subject: 'Invitation', text: 'Accept: https://siq.example/invitations/accept#code123' })).delivered).toBe(false);
    await new Promise((r) => setImmediate(r));
    expect(logged).toContain('invitations/accept#code123');
    expect(logged).toContain('"to":"x@example.test"');
  });
});
