import type { Config } from '../../config/load.js';
import type { Logger } from '../../platform/log/logger.js';
import type { IngestPipeline } from './pipeline.js';
import { startListener, type Listener, type ListenerOptions } from './sources/stream-listeners.js';

/** Starts the syslog and JSON-lines listeners the configuration asks for; each has its workspace. */
export async function startConfiguredListeners(config: Config, pipeline: IngestPipeline, logger: Logger): Promise<Listener[]> {
  const wanted: ListenerOptions[] = [];
  const host = config.host;
  const { syslog, jsonl } = config.ingest;
  if (syslog) {
    if (syslog.udpPort) wanted.push({ protocol: 'syslog', transport: 'udp', host, port: syslog.udpPort, workspaceId: syslog.workspaceId });
    if (syslog.tcpPort) wanted.push({ protocol: 'syslog', transport: 'tcp', host, port: syslog.tcpPort, workspaceId: syslog.workspaceId });
    if (syslog.tlsPort && config.security.tls) wanted.push({ protocol: 'syslog', transport: 'tls', host, port: syslog.tlsPort, workspaceId: syslog.workspaceId, tls: config.security.tls });
  }
  if (jsonl) {
    if (jsonl.tcpPort) wanted.push({ protocol: 'jsonl', transport: 'tcp', host, port: jsonl.tcpPort, workspaceId: jsonl.workspaceId });
    if (jsonl.udpPort) wanted.push({ protocol: 'jsonl', transport: 'udp', host, port: jsonl.udpPort, workspaceId: jsonl.workspaceId });
  }
  const started: Listener[] = [];
  try {
    for (const options of wanted) started.push(await startListener(pipeline, logger, options));
  } catch (err) {
    await Promise.all(started.map((l) => l.close()));
    throw err;
  }
  return started;
}
