import { createHash } from 'node:crypto';
import type { Platform } from '../../platform/index.js';
import { emitSecurityEvent } from '../security-events/service.js';
import { defaultRolePolicies, evaluate, explain, type Decision, type Explanation, type Policy, type RequestContext, type Resource, type Subject } from './engine.js';

interface PolicyRow {
  id: string;
  workspace_id: string;
  name: string;
  effect: 'allow' | 'deny';
  actions: string[];
  resources: string[];
  conditions: Policy['conditions'];
  priority: number;
  created_at: Date;
  updated_at: Date;
}

export function presentPolicy(row: PolicyRow) {
  return {
    id: row.id,
    name: row.name,
    effect: row.effect,
    actions: row.actions,
    resources: row.resources,
    conditions: row.conditions ?? {},
    priority: row.priority,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Actions whose every decision is written to policy_audit_logs (denials always are). */
const SENSITIVE = /^(workspace:(delete|update)|members:|invitations:|apikeys:|policies:(write|delete)|audit:export|evidence:delete)/;

const DECISION_TTL_MS = 60_000;

/**
 * Decides who may do what in a workspace: the role defaults plus the workspace's own policies.
 * Decisions are cached in the cache layer (shared across processes on Redis) under a
 * per-workspace generation number; changing a policy bumps the generation, which drops every
 * cached decision of that workspace at once.
 */
export class PolicyService {
  private readonly defaults = defaultRolePolicies();

  constructor(private readonly platform: Platform) {}

  async workspacePolicies(workspaceId: string): Promise<Policy[]> {
    const { rows } = await this.platform.db.query<PolicyRow>('SELECT * FROM policies WHERE workspace_id = $1 ORDER BY priority DESC, created_at', [workspaceId]);
    return rows.map((r) => ({ id: r.id, name: r.name, effect: r.effect, actions: r.actions, resources: r.resources, conditions: r.conditions ?? undefined, priority: r.priority, workspaceId: r.workspace_id }));
  }

  async listRows(workspaceId: string): Promise<PolicyRow[]> {
    const { rows } = await this.platform.db.query<PolicyRow>('SELECT * FROM policies WHERE workspace_id = $1 ORDER BY priority DESC, created_at', [workspaceId]);
    return rows;
  }

  private async generation(workspaceId: string): Promise<string> {
    return (await this.platform.cache.get(`policy:gen:${workspaceId}`)) ?? '0';
  }

  /** Call after any change to a workspace's policies. */
  async invalidate(workspaceId: string): Promise<void> {
    await this.platform.cache.incr(`policy:gen:${workspaceId}`);
  }

  async decide(workspaceId: string, subject: Subject, action: string, resource: Resource, context: RequestContext): Promise<Decision> {
    const time = context.time ?? new Date();
    // Time conditions resolve to the minute, so the minute is part of the key.
    const key = createHash('sha256')
      .update(JSON.stringify([subject.userId, subject.apiKeyId, subject.role, action, resource.path, resource.attributes ?? null, context.ip, Math.floor(time.getTime() / 60_000)]))
      .digest('base64url');
    const cacheKey = `policy:decision:${workspaceId}:${await this.generation(workspaceId)}:${key}`;
    const cached = await this.platform.cache.get(cacheKey);
    let decision: Decision;
    if (cached) {
      decision = JSON.parse(cached) as Decision;
    } else {
      decision = evaluate([...this.defaults, ...(await this.workspacePolicies(workspaceId))], subject, action, resource, { ...context, time });
      await this.platform.cache.set(cacheKey, JSON.stringify(decision), { ttlMs: DECISION_TTL_MS });
    }
    if (!decision.allowed || SENSITIVE.test(action)) {
      await this.platform.db.query(
        'INSERT INTO policy_audit_logs (workspace_id, user_id, api_key_id, action, resource, allowed, policy_id, reason, ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
        [workspaceId, subject.userId ?? null, subject.apiKeyId ?? null, action, resource.path, decision.allowed, decision.policyId, decision.reason, context.ip ?? null],
      );
    }
    if (!decision.allowed) {
      await emitSecurityEvent(this.platform, { type: 'policy.denied', severity: 'low', workspaceId, userId: subject.userId, apiKeyId: subject.apiKeyId, ip: context.ip, data: { action, resource: resource.path, reason: decision.reason } });
    }
    return decision;
  }

  async explain(workspaceId: string, subject: Subject, action: string, resource: Resource, context: RequestContext): Promise<Explanation> {
    return explain([...this.defaults, ...(await this.workspacePolicies(workspaceId))], subject, action, resource, context);
  }
}
