import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { resolveSecrets } from '../../src/config/secrets.js';
import { WorkspaceService } from '../../src/modules/workspaces/service.js';
import { createTestDatabase } from './postgres.js';

export const TEST_PASSWORD = 'Correct-Horse-Battery-42';

export interface TestApp {
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * An app on embedded defaults (PGlite, memory cache, local files) or, with `databaseUrl` /
 * `redisUrl`, on real servers. `postgres: true` creates a fresh database on TEST_DATABASE_URL.
 */
export async function buildTestApp(settings: Record<string, string> = {}, options: { postgres?: boolean } = {}): Promise<TestApp & { databaseUrl?: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'siq-test-app-'));
  const cleanups: Array<() => Promise<void>> = [async () => rmSync(dataDir, { recursive: true, force: true })];
  let databaseUrl = settings.DATABASE_URL;
  if (options.postgres && !databaseUrl) {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    databaseUrl = db.url;
  }
  const { config, problems } = loadConfig({ DATA_DIR: dataDir, JWT_SECRET: 'test-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0', ...settings, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) });
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const app = await buildApp(resolveSecrets(config), { logger: pino({ level: 'silent' }) });
  await app.ready();
  return {
    app,
    databaseUrl,
    async close() {
      await app.close();
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

export interface TestUser {
  id: string;
  email: string;
  token: string;
  refreshToken: string;
  headers: { authorization: string };
}

/** A new user with its own random address, signed in. */
export async function buildUser(app: FastifyInstance, email = `user-${randomUUID().slice(0, 8)}@example.test`): Promise<TestUser> {
  await app.identity.createUser(email, TEST_PASSWORD);
  const tokens = await app.identity.signIn(email, TEST_PASSWORD, {});
  return { id: tokens.user.id, email, token: tokens.accessToken, refreshToken: tokens.refreshToken, headers: { authorization: `Bearer ${tokens.accessToken}` } };
}

/** A workspace owned by `owner`. */
export async function buildWorkspace(app: FastifyInstance, owner: TestUser, name = `ws-${randomUUID().slice(0, 6)}`): Promise<{ id: string; name: string }> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/workspaces', headers: owner.headers, payload: { name } });
  if (res.statusCode !== 201) throw new Error(`workspace creation failed: ${res.body}`);
  return res.json();
}

/** Adds an existing user to a workspace: an invitation (made through the service, whose code the email would carry) accepted over HTTP. */
export async function addMember(app: FastifyInstance, workspaceId: string, owner: TestUser, member: TestUser, role: 'admin' | 'analyst' | 'viewer'): Promise<void> {
  const invitation = await new WorkspaceService(app.platform).invite(workspaceId, member.email, role, owner.id);
  const accepted = await app.inject({ method: 'POST', url: '/api/v1/invitations/accept', headers: member.headers, payload: { invitationCode: invitation.token } });
  if (accepted.statusCode !== 200) throw new Error(`accepting failed: ${accepted.body}`);
}
