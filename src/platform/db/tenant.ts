import type { Database, Queryable } from './types.js';

const roleUsable = new WeakMap<Database, Promise<boolean>>();

/** Whether this connection may switch to the `siq_tenant` role (true for superusers and members). */
function canUseTenantRole(db: Database): Promise<boolean> {
  let cached = roleUsable.get(db);
  if (!cached) {
    cached = db
      .query<{ usable: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'siq_tenant') AND pg_has_role(current_user, 'siq_tenant', 'MEMBER') AS usable")
      .then((r) => r.rows[0]?.usable === true, () => false);
    roleUsable.set(db, cached);
  }
  return cached;
}

/**
 * Runs `fn` in a transaction scoped to one workspace: `siq.workspace_id` is set for the
 * transaction, and the connection switches to the `siq_tenant` role so row-level security
 * applies even when the platform connects as a superuser. A query inside that forgets its
 * `workspace_id` filter still sees only this workspace's rows.
 */
export async function withWorkspace<T>(db: Database, workspaceId: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  const switchRole = await canUseTenantRole(db);
  return db.transaction(async (tx) => {
    if (switchRole) await tx.exec('SET LOCAL ROLE siq_tenant');
    await tx.query("SELECT set_config('siq.workspace_id', $1, true)", [workspaceId]);
    return fn(tx);
  });
}
