import type { FastifyReply, FastifyRequest } from 'fastify';
import { SiqError } from '../../../errors.js';
import { authenticate } from '../../../http/auth.js';

/**
 * Shippers authenticate the way their protocol lets them, always with a workspace API key that
 * has the `ingest` (or `admin`) scope: `Authorization: Bearer siq_…`, `X-API-Key: siq_…`,
 * HTTP Basic with the key as password (Filebeat, Logstash, Promtail `basic_auth`), or
 * Elasticsearch's `Authorization: ApiKey base64(id:siq_…)`. Returns the key's workspace.
 */
export async function authenticateShipper(request: FastifyRequest, reply: FastifyReply): Promise<string> {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const [scheme, value = ''] = header.split(/\s+/, 2);
    let key: string | undefined;
    if (/^basic$/i.test(scheme!)) key = Buffer.from(value, 'base64').toString('utf8').split(':').slice(1).join(':');
    else if (/^apikey$/i.test(scheme!)) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      key = decoded.includes(':') ? decoded.split(':').slice(1).join(':') : decoded;
    }
    if (key) request.headers.authorization = `Bearer ${key}`;
  }
  await authenticate(request, reply);
  const auth = request.auth!;
  if (auth.kind !== 'apikey') throw new SiqError('SIQ_FORBIDDEN', 'Shippers send events with a workspace API key (scope "ingest").');
  if (!auth.scopes.includes('ingest') && !auth.scopes.includes('admin')) throw new SiqError('SIQ_API_KEY_SCOPE', 'This API key lacks the "ingest" scope.');
  return auth.workspaceId;
}
