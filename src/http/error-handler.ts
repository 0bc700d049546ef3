import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorCatalogue, isSiqError, type ErrorCode } from '../errors.js';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string; details?: unknown };
}

// Fastify's own errors, translated to catalogue codes so callers see one vocabulary.
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'SIQ_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'SIQ_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'SIQ_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'SIQ_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'SIQ_BAD_REQUEST',
  FST_ERR_VALIDATION: 'SIQ_VALIDATION',
  FST_ERR_NOT_FOUND: 'SIQ_ROUTE_NOT_FOUND',
};

function statusCodeToCode(status: number): ErrorCode {
  if (status === 400) return 'SIQ_BAD_REQUEST';
  if (status === 401) return 'SIQ_UNAUTHENTICATED';
  if (status === 403) return 'SIQ_FORBIDDEN';
  if (status === 404) return 'SIQ_NOT_FOUND';
  if (status === 405) return 'SIQ_METHOD_NOT_ALLOWED';
  if (status === 409) return 'SIQ_CONFLICT';
  if (status === 413) return 'SIQ_PAYLOAD_TOO_LARGE';
  if (status === 415) return 'SIQ_UNSUPPORTED_MEDIA_TYPE';
  if (status === 429) return 'SIQ_RATE_LIMITED';
  if (status === 503) return 'SIQ_UNAVAILABLE';
  if (status >= 400 && status < 500) return 'SIQ_BAD_REQUEST';
  return 'SIQ_INTERNAL';
}

/** Sends one error in the uniform `{error:{code,message,requestId}}` shape. */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string, details?: unknown): FastifyReply {
  const body: ErrorBody = { error: { code, message: message ?? errorCatalogue[code].message, requestId: String(reply.request.id) } };
  if (details !== undefined) body.error.details = details;
  return reply.status(errorCatalogue[code].status).type('application/json; charset=utf-8').send(body);
}

/**
 * Every error leaves the API in the same shape with a catalogue code. Server errors are logged
 * with their stack and answered with the catalogue's generic message, so internals never leak.
 */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (isSiqError(err)) {
      if (err.statusCode >= 500) request.log.error({ err }, err.message);
      return sendError(reply, err.code, err.message, err.details);
    }
    if (err.validation) {
      const details = err.validation.map((v) => ({ path: v.instancePath || '/', message: v.message }));
      return sendError(reply, 'SIQ_VALIDATION', `The request failed validation: ${err.message}`, details);
    }
    const mapped = (err.code && fastifyCodes[err.code]) || statusCodeToCode(err.statusCode ?? 500);
    if (errorCatalogue[mapped].status >= 500) {
      request.log.error({ err }, 'request failed');
      return sendError(reply, mapped);
    }
    if (mapped === 'SIQ_RATE_LIMITED' && !reply.hasHeader('retry-after')) reply.header('retry-after', '1');
    return sendError(reply, mapped, mapped === 'SIQ_BAD_REQUEST' ? `The request is malformed: ${err.message}` : undefined);
  });

  app.setNotFoundHandler((request, reply) => sendError(reply, 'SIQ_ROUTE_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}. See /api/docs for the routes that exist.`));
}
