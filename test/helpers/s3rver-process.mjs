// Runs s3rver in its own process. s3rver encrypts list continuation tokens with DES, which
// OpenSSL 3 only offers through its legacy provider; enabling that for this child alone keeps
// the test processes on the default provider.
import S3rver from 's3rver';

const directory = process.argv[2];
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: !process.env.S3RVER_LOG });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
