import { isIP } from 'node:net';
import { QuerySyntaxError, type QueryNode } from './parser.js';

export type FieldType = 'keyword' | 'text' | 'integer' | 'ip' | 'timestamp';

/** Event fields stored as columns; anything else is looked up in `doc` (a flat jsonb of dotted keys). */
export type FieldSchema = Record<string, { column: string; type: FieldType }>;

export const defaultSchema: FieldSchema = {
  '@timestamp': { column: 'ts', type: 'timestamp' },
  'event.category': { column: 'event_category', type: 'keyword' },
  'event.action': { column: 'event_action', type: 'keyword' },
  'event.outcome': { column: 'event_outcome', type: 'keyword' },
  'event.severity': { column: 'event_severity', type: 'integer' },
  'event.source': { column: 'source', type: 'keyword' },
  'host.name': { column: 'host_name', type: 'keyword' },
  'source.ip': { column: 'source_ip', type: 'ip' },
  'destination.ip': { column: 'destination_ip', type: 'ip' },
  'user.name': { column: 'user_name', type: 'keyword' },
  message: { column: 'message', type: 'text' },
};

export interface CompiledQuery {
  /** A boolean SQL expression over the events table; values and unknown field names are parameters only. */
  sql: string;
  params: unknown[];
}

const NUMBER = /^-?\d+(\.\d+)?$/;

function validCidr(value: string): boolean {
  const [net, bits, extra] = value.split('/');
  if (extra !== undefined || !net || !/^\d{1,3}$/.test(bits ?? '')) return false;
  const version = isIP(net);
  return version !== 0 && Number(bits) <= (version === 4 ? 32 : 128);
}

/**
 * Compiles a parsed query to SQL. Semantics (see README.md in this folder): keyword columns
 * match exactly (as in Elasticsearch), other fields case-insensitively; free text and `message:` words use the full-text index
 * (`search`, config 'simple'); wildcards become ILIKE patterns; IP fields take addresses and
 * CIDR blocks; NOT includes events where the field is missing.
 *
 * @param paramOffset how many parameters the caller already uses ($1…$n come before ours)
 */
export function compileQuery(ast: QueryNode, options: { schema?: FieldSchema; paramOffset?: number } = {}): CompiledQuery {
  const schema = options.schema ?? defaultSchema;
  const offset = options.paramOffset ?? 0;
  const params: unknown[] = [];
  const p = (value: unknown): string => {
    params.push(value);
    return `$${offset + params.length}`;
  };
  const invalid = (position: number, expected: string, found: string): never => {
    throw new QuerySyntaxError(position, expected, found);
  };

  const docText = (field: string) => `(doc ->> ${p(field)}::text)`;

  const term = (node: Extract<QueryNode, { type: 'term' }>): string => {
    if (node.field === null) {
      if (node.wildcard) return `message ILIKE ${p(node.wildcard)}`;
      return `search @@ ${node.phrase ? 'phraseto_tsquery' : 'plainto_tsquery'}('simple', ${p(node.value)})`;
    }
    const col = schema[node.field];
    if (!col) {
      if (node.wildcard) return `${docText(node.field)} ILIKE ${p(node.wildcard)}`;
      const key = p(node.field);
      const value = p(node.value);
      // Scalars compare as text, case-insensitively; arrays match when one element does.
      return `(lower(doc ->> ${key}::text) = lower(${value}) OR (jsonb_typeof(doc -> ${key}::text) = 'array' AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(doc -> ${key}::text) AS el(v) WHERE lower(el.v) = lower(${value}))))`;
    }
    switch (col.type) {
      case 'text':
        if (node.wildcard) return `${col.column} ILIKE ${p(node.wildcard)}`;
        return col.column === 'message'
          ? `search @@ ${node.phrase ? 'phraseto_tsquery' : 'plainto_tsquery'}('simple', ${p(node.value)})`
          : `lower(${col.column}) = lower(${p(node.value)})`;
      case 'keyword':
        // Exact, as keyword fields are in Elasticsearch: it keeps the column's index usable.
        // Wildcards stay case-insensitive.
        if (node.wildcard) return `${col.column} ILIKE ${p(node.wildcard)}`;
        return `${col.column} = ${p(node.value)}`;
      case 'integer':
        if (!/^-?\d+$/.test(node.value)) invalid(node.position, `a whole number for ${node.field}`, node.value);
        return `${col.column} = ${p(Number(node.value))}::integer`;
      case 'ip':
        if (node.value.includes('/')) {
          if (!validCidr(node.value)) invalid(node.position, `an IP address or CIDR block for ${node.field}`, node.value);
          return `${col.column} <<= ${p(node.value)}::cidr`;
        }
        if (!isIP(node.value)) invalid(node.position, `an IP address or CIDR block for ${node.field}`, node.value);
        return `${col.column} = ${p(node.value)}::inet`;
      case 'timestamp':
        if (Number.isNaN(Date.parse(node.value))) invalid(node.position, `a date or time for ${node.field}`, node.value);
        return `${col.column} = ${p(new Date(node.value).toISOString())}::timestamptz`;
    }
  };

  const range = (node: Extract<QueryNode, { type: 'range' }>): string => {
    const col = schema[node.field];
    const parts: string[] = [];
    const bound = (value: string, op: string) => {
      if (!col) {
        if (NUMBER.test(value)) parts.push(`(CASE WHEN jsonb_typeof(doc -> ${p(node.field)}::text) = 'number' THEN (doc ->> ${p(node.field)}::text)::numeric END) ${op} ${p(Number(value))}::numeric`);
        else parts.push(`${docText(node.field)} ${op} ${p(value)}`);
        return;
      }
      switch (col.type) {
        case 'integer':
          if (!NUMBER.test(value)) invalid(node.position, `a number for ${node.field}`, value);
          parts.push(`${col.column} ${op} ${p(Number(value))}::numeric`);
          return;
        case 'timestamp':
          if (Number.isNaN(Date.parse(value))) invalid(node.position, `a date or time for ${node.field}`, value);
          parts.push(`${col.column} ${op} ${p(new Date(value).toISOString())}::timestamptz`);
          return;
        case 'ip':
          if (!isIP(value)) invalid(node.position, `an IP address for ${node.field}`, value);
          parts.push(`${col.column} ${op} ${p(value)}::inet`);
          return;
        default:
          parts.push(`${col.column} ${op} ${p(value)}`);
      }
    };
    if (node.lower !== null) bound(node.lower, node.includeLower ? '>=' : '>');
    if (node.upper !== null) bound(node.upper, node.includeUpper ? '<=' : '<');
    if (parts.length === 0) return node.field in schema ? `${schema[node.field]!.column} IS NOT NULL` : `doc ? ${p(node.field)}::text`;
    return parts.join(' AND ');
  };

  const walk = (node: QueryNode): string => {
    switch (node.type) {
      case 'all':
        return 'TRUE';
      case 'and':
        return `(${walk(node.left)} AND ${walk(node.right)})`;
      case 'or':
        return `(${walk(node.left)} OR ${walk(node.right)})`;
      case 'not':
        // NULL (field missing) counts as "not matching", so NOT includes those events.
        return `NOT coalesce((${walk(node.child)}), false)`;
      case 'exists':
        return schema[node.field] ? `${schema[node.field]!.column} IS NOT NULL` : `doc ? ${p(node.field)}::text`;
      case 'term':
        return term(node);
      case 'range':
        return range(node);
    }
  };

  return { sql: walk(ast), params };
}
