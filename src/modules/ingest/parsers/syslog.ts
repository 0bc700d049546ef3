/**
 * Syslog messages, RFC 5424 and RFC 3164 (BSD), into flat ECS-style fields, plus the common
 * sshd, sudo and su messages into event.action / event.outcome / user.name / source.ip.
 * Anything that is not recognisable syslog still becomes an event: the whole line as `message`.
 */
export type SyslogFields = Record<string, unknown>;

const FACILITIES = ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'ntp', 'security', 'console', 'solaris-cron', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'];
const SEVERITIES = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'informational', 'debug'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const RFC5424 = /^<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?[^\\]\](?:\[.*?[^\\]\])*)(?: (.*))?$/s;
const RFC3164 = /^<(\d{1,3})>([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (?:(\S+) )?([^:[\s]+)(?:\[(\d+)\])?: ?(.*)$/s;

function nil(v: string | undefined): string | undefined {
  return v === undefined || v === '-' ? undefined : v;
}

/** Structured data `[id k="v" …][…]` → `syslog.sd.<id>.<k>`. */
export function parseStructuredData(sd: string): Record<string, string> {
  const out: Record<string, string> = {};
  const element = /\[([^\s\]]+)((?:\s+[^=\s\]]+="(?:[^"\\]|\\.)*")*)\s*\]/g;
  let m: RegExpExecArray | null;
  while ((m = element.exec(sd))) {
    const id = m[1]!;
    const params = /([^=\s\]]+)="((?:[^"\\]|\\.)*)"/g;
    let p: RegExpExecArray | null;
    while ((p = params.exec(m[2]!))) out[`syslog.sd.${id}.${p[1]}`] = p[2]!.replace(/\\(["\\\]])/g, '$1');
  }
  return out;
}

function priority(pri: number, out: SyslogFields): void {
  if (pri > 191) return;
  out['log.syslog.priority'] = pri;
  out['log.syslog.facility.code'] = pri >> 3;
  out['log.syslog.facility.name'] = FACILITIES[pri >> 3];
  out['log.syslog.severity.code'] = pri & 7;
  out['log.syslog.severity.name'] = SEVERITIES[pri & 7];
  out['event.severity'] = pri & 7;
}

/** Parses one syslog line (without its framing). `now` supplies the year RFC 3164 leaves out. */
export function parseSyslog(line: string, now: Date = new Date()): SyslogFields {
  const text = line.replace(/[\r\n]+$/, '');
  const out: SyslogFields = { 'event.original': text };
  let m = RFC5424.exec(text);
  if (m) {
    priority(Number(m[1]), out);
    out['log.syslog.version'] = Number(m[2]);
    const ts = nil(m[3]);
    if (ts) out['@timestamp'] = ts;
    if (nil(m[4])) out['host.name'] = m[4];
    if (nil(m[5])) out['process.name'] = m[5];
    if (nil(m[6])) out['process.pid'] = /^\d+$/.test(m[6]!) ? Number(m[6]) : m[6];
    if (nil(m[7])) out['log.syslog.msgid'] = m[7];
    if (m[8] && m[8] !== '-') Object.assign(out, parseStructuredData(m[8]));
    out.message = (m[9] ?? '').replace(/^\uFEFF/, '');
    out['log.syslog.format'] = 'rfc5424';
    return Object.assign(out, parseAuthMessage(String(out['process.name'] ?? ''), String(out.message)));
  }
  m = RFC3164.exec(text);
  if (m) {
    priority(Number(m[1]), out);
    const month = MONTHS.indexOf(m[2]!);
    if (month >= 0) {
      // No year and no zone in BSD syslog: the year that puts the time nearest to now, read as UTC.
      let year = now.getUTCFullYear();
      let t = Date.UTC(year, month, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
      if (t - now.getTime() > 7 * 86_400_000) t = Date.UTC(--year, month, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
      out['@timestamp'] = new Date(t).toISOString();
      out['event.timezone'] = 'UTC (assumed: RFC 3164 has no zone)';
    }
    if (m[7]) out['host.name'] = m[7];
    out['process.name'] = m[8];
    if (m[9]) out['process.pid'] = Number(m[9]);
    out.message = m[10];
    out['log.syslog.format'] = 'rfc3164';
    return Object.assign(out, parseAuthMessage(m[8]!, m[10]!));
  }
  const pri = /^<(\d{1,3})>(.*)$/s.exec(text);
  if (pri) {
    priority(Number(pri[1]), out);
    out.message = pri[2];
  } else {
    out.message = text;
  }
  out['log.syslog.format'] = 'unknown';
  return out;
}

/** sshd, sudo and su messages → action, outcome, user, source address. */
export function parseAuthMessage(program: string, message: string): SyslogFields {
  const out: SyslogFields = {};
  let m: RegExpExecArray | null;
  if (program === 'sshd') {
    if ((m = /^Failed (\S+) for (invalid user )?(\S+) from (\S+) port (\d+)/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'ssh_login', 'event.outcome': 'failure', 'user.name': m[3], 'source.ip': m[4], 'source.port': Number(m[5]), 'ssh.method': m[1] });
      if (m[2]) out['user.invalid'] = true;
    } else if ((m = /^Accepted (\S+) for (\S+) from (\S+) port (\d+)/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'ssh_login', 'event.outcome': 'success', 'user.name': m[2], 'source.ip': m[3], 'source.port': Number(m[4]), 'ssh.method': m[1] });
    } else if ((m = /^Invalid user (\S*) from (\S+)(?: port (\d+))?/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'ssh_invalid_user', 'event.outcome': 'failure', 'user.name': m[1], 'source.ip': m[2] });
    } else if ((m = /^Disconnected from (?:authenticating |invalid )?user (\S+) (\S+) port (\d+)/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'ssh_disconnect', 'user.name': m[1], 'source.ip': m[2] });
    }
  } else if (program === 'sudo') {
    if ((m = /^\s*(\S+) : (?:(\d+) incorrect password attempts? ; )?TTY=(\S+) ; PWD=(.*?) ; USER=(\S+) ; COMMAND=(.*)$/.exec(message))) {
      Object.assign(out, { 'event.category': 'process', 'event.action': 'sudo', 'event.outcome': m[2] ? 'failure' : 'success', 'user.name': m[1], 'user.target.name': m[5], 'process.command_line': m[6], 'process.working_directory': m[4] });
    } else if ((m = /authentication failure;.*?\buser=(\S+)/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'sudo', 'event.outcome': 'failure', 'user.name': m[1] });
    }
  } else if (program === 'su') {
    if ((m = /^(FAILED|Successful) su for (\S+) by (\S+)/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'su', 'event.outcome': m[1] === 'FAILED' ? 'failure' : 'success', 'user.name': m[3], 'user.target.name': m[2] });
    } else if ((m = /^pam_unix\(su(?:-l)?:auth\): authentication failure;.*?ruser=(\S*).*?user=(\S+)/.exec(message))) {
      Object.assign(out, { 'event.category': 'authentication', 'event.action': 'su', 'event.outcome': 'failure', 'user.name': m[1] || undefined, 'user.target.name': m[2] });
    }
  }
  return out;
}
