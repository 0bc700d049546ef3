import { describe, expect, it } from 'vitest';
import { isSensitiveKey, redactLine, redactString, redactValue, REDACTED } from './redact.js';

describe('isSensitiveKey', () => {
  it.each([
    'password', 'Password', 'newPassword', 'db_password', 'passwd', 'secret', 'clientSecret', 'client_secret', 'JWT_SECRET', 'token', 'accessToken',
    'refresh_token', 'authorization', 'Authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'apiKey', 'api_key', 'x-api-key', 'S3_SECRET_KEY',
    'secretKey', 'accessKey', 'privateKey', 'private_key', 'encryptionKey', 'sessionId', 'credentials',
  ])('%s is sensitive', (key) => expect(isSensitiveKey(key)).toBe(true));

  it.each(['key', 'keyPrefix', 'message', 'user', 'userId', 'workspaceId', 'host', 'author', 'component', 'passed', 'bucket'])('%s is not', (key) =>
    expect(isSensitiveKey(key)).toBe(false));
});

describe('redactString', () => {
  it.each([
    ['Authorization: Bearer abc.def-123_XYZ', 'Authorization: [Redacted] [Redacted]'],
    ['Bearer abc.def-123_XYZ', 'Bearer [Redacted]'],
    ['sent Basic dXNlcjpwYXNz to the proxy', 'sent Basic [Redacted] to the proxy'],
    ['login failed password=hunter2 for bob', 'login failed password=[Redacted] for bob'],
    ['{"password":"hunter2","user":"bob"}', '{"password":"[Redacted]","user":"bob"}'],
    ["config secret: 's3cr3t' loaded", "config secret: '[Redacted]' loaded"],
    ['GET /x?api_key=AKIA123&page=2', 'GET /x?api_key=[Redacted]&page=2'],
    ['connect postgres://siq:pa55word@db:5432/siq', 'connect postgres://siq:[Redacted]@db:5432/siq'],
    ['Cookie: session=abc; theme=dark', 'Cookie: [Redacted]'],
    ['token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-x in text', 'token [Redacted] in text'],
    ['nothing to hide here', 'nothing to hide here'],
  ])('%s', (input, expected) => expect(redactString(input)).toBe(expected));
});

describe('redactValue', () => {
  it('redacts sensitive keys at any depth, and secrets inside strings', () => {
    const input = {
      user: 'bob',
      password: 'hunter2',
      nested: { deeper: [{ apiKey: 'k-1', note: 'Bearer tok_123456' }], s3: { secretKey: 'xyz', bucket: 'files' } },
    };
    expect(redactValue(input)).toEqual({
      user: 'bob',
      password: REDACTED,
      nested: { deeper: [{ apiKey: REDACTED, note: `Bearer ${REDACTED}` }], s3: { secretKey: REDACTED, bucket: 'files' } },
    });
    expect(input.password).toBe('hunter2'); // the original is untouched
  });

  it('redacts the headers of a Fastify-style request', () => {
    const req = { method: 'GET', url: '/api', headers: { authorization: 'Bearer abcdef', cookie: 'sid=1', 'user-agent': 'curl/8', 'x-api-key': 'k' } };
    expect(redactValue({ req })).toEqual({ req: { method: 'GET', url: '/api', headers: { authorization: REDACTED, cookie: REDACTED, 'user-agent': 'curl/8', 'x-api-key': REDACTED } } });
  });

  it('survives cycles', () => {
    const a: Record<string, unknown> = { name: 'a', token: 't' };
    a.self = a;
    expect(redactValue(a)).toEqual({ name: 'a', token: REDACTED, self: '[Circular]' });
  });

  it('redacts a serialized line and scrubs one that is not JSON', () => {
    expect(JSON.parse(redactLine('{"message":"password=x1","headers":{"cookie":"a=b"}}'))).toEqual({ message: `password=${REDACTED}`, headers: { cookie: REDACTED } });
    expect(redactLine('plain text Bearer abc123456')).toBe(`plain text Bearer ${REDACTED}`);
  });
});
