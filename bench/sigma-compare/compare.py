#!/usr/bin/env python3
"""Reference Sigma evaluation over SQLite, compared rule by rule with SentinelIQ's engine.

The events are loaded into one SQLite table, one TEXT COLLATE NOCASE column per field (as
Zircolite does), each Sigma rule is converted into an SQL WHERE clause and run, and the set of
matching event indices per rule is compared with the engine's (dump-engine.ts output).

Two converters:
  * pySigma + pysigma-backend-sqlite + the sysmon and windows-logsource pipelines, when those
    packages are importable (requirements-pysigma.txt), selected with --converter pysigma;
  * a built-in converter (default) that follows the same backend's SQL semantics (= with NOCASE,
    LIKE ... ESCAPE '\\', GLOB for |cased, REGEXP through Python's re.search) and the same
    pipelines' logsource conditions. It is independent of the TypeScript engine's code.
See README.md for the known differences of each.
"""
from __future__ import annotations

import argparse
import base64
import glob
import gzip
import ipaddress
import itertools
import json
import os
import re
import sqlite3
import sys
import time
from collections import Counter, defaultdict

import yaml

# --- logsource conditions, as pySigma's sysmon_pipeline + windows_logsource_pipeline add them --------

SYSMON_EVENT_IDS = {
    'process_creation': 1, 'file_change': 2, 'network_connection': 3, 'process_termination': 5,
    'sysmon_status': [4, 16], 'driver_load': 6, 'image_load': 7, 'create_remote_thread': 8,
    'raw_access_thread': 9, 'process_access': 10, 'file_event': 11, 'registry_add': 12,
    'registry_delete': 12, 'registry_set': 13, 'registry_rename': 14, 'registry_event': [12, 13, 14],
    'create_stream_hash': 15, 'pipe_created': [17, 18], 'wmi_event': [19, 20, 21], 'dns_query': 22,
    'file_delete': [23, 26], 'clipboard_capture': 24, 'process_tampering': 25, 'sysmon_error': 255,
}
POWERSHELL_CATEGORIES = {
    'ps_module': ('powershell', 4103), 'ps_script': ('powershell', 4104),
    'ps_classic_start': ('powershell-classic', 400), 'ps_classic_provider_start': ('powershell-classic', 600),
    'ps_classic_script': ('powershell-classic', 800),
}
WINDOWS_CHANNELS = {
    'security': 'Security', 'application': 'Application', 'system': 'System',
    'sysmon': 'Microsoft-Windows-Sysmon/Operational',
    'powershell': ['Microsoft-Windows-PowerShell/Operational', 'PowerShellCore/Operational'],
    'powershell-classic': 'Windows PowerShell', 'taskscheduler': 'Microsoft-Windows-TaskScheduler/Operational',
    'wmi': 'Microsoft-Windows-WMI-Activity/Operational', 'dns-server': 'DNS Server',
    'dns-server-audit': 'Microsoft-Windows-DNS-Server/Audit', 'dns-server-analytic': 'Microsoft-Windows-DNS-Server/Analytical',
    'driver-framework': 'Microsoft-Windows-DriverFrameworks-UserMode/Operational', 'ntlm': 'Microsoft-Windows-NTLM/Operational',
    'dhcp': 'Microsoft-Windows-DHCP-Server/Operational', 'msexchange-management': 'MSExchange Management',
    'applocker': ['Microsoft-Windows-AppLocker/MSI and Script', 'Microsoft-Windows-AppLocker/EXE and DLL',
                  'Microsoft-Windows-AppLocker/Packaged app-Deployment', 'Microsoft-Windows-AppLocker/Packaged app-Execution'],
    'printservice-admin': 'Microsoft-Windows-PrintService/Admin', 'printservice-operational': 'Microsoft-Windows-PrintService/Operational',
    'codeintegrity-operational': 'Microsoft-Windows-CodeIntegrity/Operational', 'smbclient-security': 'Microsoft-Windows-SmbClient/Security',
    'firewall-as': 'Microsoft-Windows-Windows Firewall With Advanced Security/Firewall', 'bits-client': 'Microsoft-Windows-Bits-Client/Operational',
    'windefend': 'Microsoft-Windows-Windows Defender/Operational',
    'terminalservices-localsessionmanager': 'Microsoft-Windows-TerminalServices-LocalSessionManager/Operational',
    'microsoft-servicebus-client': 'Microsoft-ServiceBus-Client', 'ldap_debug': 'Microsoft-Windows-LDAP-Client/Debug',
    'security-mitigations': ['Microsoft-Windows-Security-Mitigations/Kernel Mode', 'Microsoft-Windows-Security-Mitigations/User Mode'],
    'diagnosis-scripted': 'Microsoft-Windows-Diagnosis-Scripted/Operational', 'shell-core': 'Microsoft-Windows-Shell-Core/Operational',
    'openssh': 'OpenSSH/Operational', 'bitlocker': 'Microsoft-Windows-BitLocker/BitLocker Management',
}


class Unsupported(Exception):
    """The reference cannot convert this rule (the reason is the message)."""


def logsource_conditions(ls: dict) -> tuple[dict, bool]:
    """Field → value(s) the pipelines add for a windows logsource; and whether the logsource is known."""
    cond: dict = {}
    category, service = ls.get('category'), ls.get('service')
    known = category is None
    if category in SYSMON_EVENT_IDS:
        cond['EventID'] = SYSMON_EVENT_IDS[category]
        service, known = 'sysmon', True
    elif category in POWERSHELL_CATEGORIES:
        service, cond['EventID'] = POWERSHELL_CATEGORIES[category]
        known = True
    if service is not None:
        if service in WINDOWS_CHANNELS:
            cond['Channel'] = WINDOWS_CHANNELS[service]
        else:
            known = False
    return cond, known


# --- events ------------------------------------------------------------------------------------------

def flatten(obj: dict, prefix: str = '', out: dict | None = None) -> dict:
    out = {} if out is None else out
    for k, v in obj.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            flatten(v, key + '.', out)
        elif v is None:
            continue
        elif isinstance(v, bool):
            out[key] = 'true' if v else 'false'
        elif isinstance(v, (list,)):
            out[key] = json.dumps(v)
        else:
            out[key] = str(v)
    return out


# NXLog names the event's System fields differently; the loader copies them under Sigma's names
# (as Zircolite's field mappings do for its input formats).
LOADER_ALIASES = {'Provider_Name': 'SourceName', 'Computer': 'Hostname'}


def read_events(events_dir: str):
    """(index, flat event or None) for every non-blank line, files in name order (as dump-engine.ts)."""
    index = 0
    for path in sorted(glob.glob(os.path.join(events_dir, '*.ndjson.gz'))):
        with gzip.open(path, 'rt', encoding='utf-8') as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    ev = flatten(json.loads(line))
                except (ValueError, AttributeError):
                    ev = None
                for sigma_name, nxlog_name in LOADER_ALIASES.items():
                    if ev is not None and sigma_name not in ev and nxlog_name in ev:
                        ev[sigma_name] = ev[nxlog_name]
                yield index, ev
                index += 1


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def regexp(pattern, value):
    if value is None:
        return 0
    rx = _re_cache.get(pattern)
    if rx is None:
        rx = _re_cache[pattern] = re.compile(pattern)
    return 1 if rx.search(value) else 0


_re_cache: dict = {}


def cidr_match(value, net):
    if value is None:
        return 0
    try:
        return 1 if ipaddress.ip_address(value) in ipaddress.ip_network(net, strict=False) else 0
    except ValueError:
        return 0


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def open_db(events_dir: str, extra_fields: set, db_path: str) -> tuple[sqlite3.Connection, int, dict]:
    """The events table; reused from db_path when it was built from the same files."""
    stamp = json.dumps([LOADER_ALIASES] + sorted((os.path.basename(p), os.path.getsize(p)) for p in glob.glob(os.path.join(events_dir, '*.ndjson.gz'))))
    if db_path != ':memory:' and os.path.exists(db_path):
        db = sqlite3.connect(db_path)
        try:
            if db.execute('SELECT stamp FROM meta').fetchone()[0] == stamp:
                cols = {r[1].lower(): r[1] for r in db.execute('PRAGMA table_info(events)')}
                missing = [f for f in extra_fields if f.lower() not in cols]
                for f in missing:
                    db.execute(f'ALTER TABLE events ADD COLUMN {q(f)} TEXT COLLATE NOCASE')
                    cols[f.lower()] = f
                n = db.execute('SELECT count(*) FROM events').fetchone()[0] + db.execute('SELECT skipped FROM meta').fetchone()[0]
                return register(db), n, cols
        except sqlite3.Error:
            pass
        db.close()
        os.remove(db_path)
    events = list(read_events(events_dir))
    cols: dict = {}  # lower-case name → column name (SQLite column names ignore case)
    for _, ev in events:
        for k in ev or {}:
            cols.setdefault(k.lower(), k)
    for f in extra_fields:
        cols.setdefault(f.lower(), f)
    names = list(cols.values())
    db = sqlite3.connect(db_path)
    db.execute('CREATE TABLE events (idx INTEGER PRIMARY KEY, ' + ', '.join(f'{q(c)} TEXT COLLATE NOCASE' for c in names) + ')')
    position = {c.lower(): i for i, c in enumerate(names)}
    sql = f'INSERT INTO events VALUES (?{", ?" * len(names)})'
    skipped = 0
    rows = []
    for idx, ev in events:
        if ev is None:
            skipped += 1
            continue
        row = [None] * (len(names) + 1)
        row[0] = idx
        for k, v in ev.items():
            p = position[k.lower()]
            if row[p + 1] is None:
                row[p + 1] = v
        rows.append(row)
    db.executemany(sql, rows)
    for c in ('Channel', 'EventID'):
        if c.lower() in cols:
            db.execute(f'CREATE INDEX {q("i_" + c)} ON events ({q(cols[c.lower()])})')
    db.execute('CREATE TABLE meta (stamp TEXT, skipped INTEGER)')
    db.execute('INSERT INTO meta VALUES (?, ?)', (stamp, skipped))
    db.commit()
    return register(db), len(events), cols


def register(db: sqlite3.Connection) -> sqlite3.Connection:
    db.create_function('REGEXP', 2, regexp, deterministic=True)
    db.create_function('cidr_match', 2, cidr_match, deterministic=True)
    db.create_function('num', 1, num, deterministic=True)
    return db


# --- the built-in converter ------------------------------------------------------------------------

STAR, QMARK = object(), object()
WINDASH = ('-', '/', '\u2013', '\u2014', '\u2015')


def sigma_string(s: str) -> list:
    """A Sigma string as characters and wildcards (\\ escapes *, ? and \\; any other \\ is literal)."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == '\\' and i + 1 < len(s) and s[i + 1] in '*?\\':
            out.append(s[i + 1])
            i += 2
            continue
        out.append(STAR if c == '*' else QMARK if c == '?' else c)
        i += 1
    return out


def like_pattern(tokens: list) -> str:
    return ''.join('%' if t is STAR else '_' if t is QMARK else ('\\' + t if t in '%_\\' else t) for t in tokens)


def glob_pattern(tokens: list) -> str:
    return ''.join('*' if t is STAR else '?' if t is QMARK else (f'[{t}]' if t in '*?[' else t) for t in tokens)


def base64_offsets(data: bytes) -> list[str]:
    out = []
    for i in range(3):
        enc = base64.b64encode(i * b' ' + data).decode()
        start = (0, 2, 3)[i]
        end = (None, -3, -2)[(len(data) + i) % 3]
        out.append(enc[start:end])
    return out


def windash_variants(s: str) -> list[str]:
    parts = re.split(r'\B[-/]\b', s)
    if len(parts) == 1:
        return [s]
    if len(parts) > 6:
        raise Unsupported('windash: too many dashes')
    return [''.join(p + (d[i] if i < len(d) else '') for i, p in enumerate(parts)) for d in itertools.product(WINDASH, repeat=len(parts) - 1)]


def balanced(op: str, parts: list[str]) -> str:
    """parts joined by op, nested so that long lists stay within SQLite's expression depth."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= 64:
        return '(' + op.join(parts) + ')'
    mid = len(parts) // 2
    return '(' + balanced(op, parts[:mid]) + op + balanced(op, parts[mid:]) + ')'


class Converter:
    def __init__(self, cols: dict, sql_nulls: bool = False):
        self.cols = cols
        self.fields: set = set()
        # SQL's NULL logic makes `NOT (field LIKE …)` unknown, hence false, when the field is
        # missing; Sigma says a missing field simply does not match, so each test is coalesced.
        self.sql_nulls = sql_nulls

    def col(self, field: str) -> str:
        self.fields.add(field)
        return q(self.cols.get(field.lower(), field))

    def item(self, field: str | None, mods: list[str], values, params: list) -> str:
        if field is None:
            raise Unsupported('keywords (values without a field)')
        known = {'contains', 'startswith', 'endswith', 'all', 're', 'i', 'm', 's', 'cidr', 'exists', 'fieldref', 'cased',
                 'windash', 'base64', 'base64offset', 'wide', 'utf16le', 'utf16be', 'utf16', 'lt', 'lte', 'gt', 'gte'}
        for m in mods:
            if m not in known:
                raise Unsupported(f'modifier {m}')
        col = self.col(field)
        vals = values if isinstance(values, list) else [values]
        if 'exists' in mods:
            if len(vals) != 1 or not isinstance(vals[0], bool):
                raise Unsupported('exists needs true or false')
            return f'{col} IS NOT NULL' if vals[0] else f'{col} IS NULL'
        joiner = ' AND ' if 'all' in mods else ' OR '
        parts = []
        for v in vals:
            alternatives = [self.value(col, mods, x, params) for x in self.transform(mods, v)]
            parts.append(balanced(' OR ', alternatives))
        if not parts:
            raise Unsupported('empty value list')
        return balanced(joiner, parts)

    def transform(self, mods: list[str], v) -> list:
        """Values after the transforming modifiers, in their order."""
        out = [v]
        for m in mods:
            if m == 'windash':
                out = [w for x in out for w in (windash_variants(x) if isinstance(x, str) else [x])]
            elif m in ('wide', 'utf16le'):
                out = [str(x).encode('utf-16-le') for x in out]
            elif m == 'utf16be':
                out = [str(x).encode('utf-16-be') for x in out]
            elif m == 'utf16':
                out = [b'\xff\xfe' + str(x).encode('utf-16-le') for x in out]
            elif m == 'base64':
                out = [('B64', base64.b64encode(x if isinstance(x, bytes) else str(x).encode()).decode()) for x in out]
            elif m == 'base64offset':
                out = [('B64', e) for x in out for e in base64_offsets(x if isinstance(x, bytes) else str(x).encode())]
        return out

    def value(self, col: str, mods: list[str], v, params: list) -> str:
        if isinstance(v, bytes):
            v = v.decode('latin-1')
        if v is None:
            return f'{col} IS NULL'
        if 're' in mods:
            flags = ''.join(f for f in 'ims' if f in mods)
            params.append((f'(?{flags})' if flags else '') + str(v))
            return f'{col} REGEXP ?'
        if 'cidr' in mods:
            params.append(str(v))
            return f'cidr_match({col}, ?)'
        for op, sym in (('lt', '<'), ('lte', '<='), ('gt', '>'), ('gte', '>=')):
            if op in mods:
                params.append(float(v))
                return f'num({col}) {sym} ?'
        if 'fieldref' in mods:
            other = self.col(str(v))
            if 'contains' in mods:
                return f"{col} LIKE '%' || {other} || '%' ESCAPE '\\'"
            if 'startswith' in mods:
                return f"{col} LIKE {other} || '%' ESCAPE '\\'"
            if 'endswith' in mods:
                return f"{col} LIKE '%' || {other} ESCAPE '\\'"
            return f'{col} = {other}'
        if isinstance(v, tuple):  # base64 output: literal text
            tokens = list(v[1])
        elif isinstance(v, bool):
            tokens = list('true' if v else 'false')
        elif isinstance(v, (int, float)):
            if not any(m in mods for m in ('contains', 'startswith', 'endswith')):
                params.append(v)
                return f'{col} = ?'
            tokens = list(str(v))
        else:
            tokens = sigma_string(str(v))
        if 'contains' in mods or 'endswith' in mods:
            if not tokens or tokens[0] is not STAR:
                tokens = [STAR] + tokens
        if 'contains' in mods or 'startswith' in mods:
            if not tokens or tokens[-1] is not STAR:
                tokens = tokens + [STAR]
        if 'cased' in mods:
            params.append(glob_pattern(tokens))
            return f'{col} GLOB ?'
        if any(t is STAR or t is QMARK for t in tokens) or any(t in '%_\\' for t in tokens if isinstance(t, str)):
            params.append(like_pattern(tokens))
            return f"{col} LIKE ? ESCAPE '\\'"
        params.append(''.join(tokens))
        return f'{col} = ?'

    def selection(self, body, params: list) -> str:
        if isinstance(body, dict):
            parts = []
            for key, values in body.items():
                field, *mods = str(key).split('|')
                test = self.item(field or None, mods, values, params)
                parts.append(test if self.sql_nulls else f'coalesce({test}, 0)')
            if not parts:
                raise Unsupported('empty selection')
            return parts[0] if len(parts) == 1 else '(' + ' AND '.join(parts) + ')'
        if isinstance(body, list):
            if all(isinstance(x, dict) for x in body):
                parts = [self.selection(x, params) for x in body]
                return parts[0] if len(parts) == 1 else '(' + ' OR '.join(parts) + ')'
            raise Unsupported('keywords (values without a field)')
        raise Unsupported('keywords (values without a field)')

    def condition(self, text: str, detection: dict, params: list) -> str:
        if '|' in text:
            raise Unsupported('aggregation in condition')
        tokens = re.findall(r'\(|\)|[^\s()]+', text)
        names = [k for k in detection if k != 'condition']
        pos = 0

        def peek():
            return tokens[pos].lower() if pos < len(tokens) else None

        def take():
            nonlocal pos
            pos += 1
            return tokens[pos - 1]

        def sel(name: str) -> str:
            if name not in detection:
                raise Unsupported(f'condition names unknown selection {name}')
            return self.selection(detection[name], params)

        def primary() -> str:
            t = peek()
            if t == 'not':
                take()
                return f'NOT {primary()}'
            if t == '(':
                take()
                e = expr()
                if take() != ')':
                    raise Unsupported('unbalanced condition')
                return f'({e})'
            if t in ('1', 'all', 'any') and pos + 1 < len(tokens) and tokens[pos + 1].lower() == 'of':
                quant = take().lower()
                take()
                target = take()
                if target.lower() == 'them':
                    chosen = [n for n in names if not n.startswith('_')]
                else:
                    rx = re.compile('^' + re.escape(target).replace('\\*', '.*') + '$')
                    chosen = [n for n in names if rx.match(n)]
                if not chosen:
                    raise Unsupported(f'{target} names no selection')
                parts = [sel(n) for n in chosen]
                return '(' + (' AND ' if quant == 'all' else ' OR ').join(parts) + ')'
            if t is None:
                raise Unsupported('truncated condition')
            return sel(take())

        def conj() -> str:
            parts = [primary()]
            while peek() == 'and':
                take()
                parts.append(primary())
            return parts[0] if len(parts) == 1 else '(' + ' AND '.join(parts) + ')'

        def expr() -> str:
            parts = [conj()]
            while peek() == 'or':
                take()
                parts.append(conj())
            return parts[0] if len(parts) == 1 else '(' + ' OR '.join(parts) + ')'

        e = expr()
        if pos != len(tokens):
            raise Unsupported('trailing tokens in condition')
        return e

    def rule(self, doc: dict) -> tuple[str, list]:
        det = doc.get('detection')
        if not isinstance(det, dict) or 'condition' not in det:
            raise Unsupported('no detection')
        params: list = []
        conds = det['condition'] if isinstance(det['condition'], list) else [det['condition']]
        where = ' OR '.join(f'({self.condition(str(c), det, params)})' for c in conds)
        ls_cond, _ = logsource_conditions(doc.get('logsource') or {})
        ls_parts, ls_params = [], []
        for f, v in ls_cond.items():
            vs = v if isinstance(v, list) else [v]
            ls_parts.append(f'{self.col(f)} IN ({", ".join("?" for _ in vs)})')
            ls_params.extend(vs)
        if ls_parts:
            where = ' AND '.join(ls_parts) + f' AND ({where})'
        return where, ls_params + params


class PySigmaConverter:
    """The official converter: pySigma + pySigma-backend-sqlite + the sysmon and windows-logsource
    pipelines (requirements-pysigma.txt), imported from the normal module path (PYTHONPATH)."""

    def __init__(self, table: str = 'events'):
        import sigma
        from sigma.backends.sqlite import sqliteBackend
        from sigma.collection import SigmaCollection
        from sigma.pipelines.sysmon import sysmon_pipeline
        from sigma.pipelines.windows import windows_logsource_pipeline
        # pySigma 1.5+ validates regular expressions with google-re2 by default (SafePolicy);
        # matching is done by SQLite here (REGEXP = Python re), so validate with Python re too
        # when the policy API exists, as Zircolite's Python matcher would accept them.
        try:
            from sigma.policy.profiles import TrustedPolicy
            sigma.default_policy = TrustedPolicy
        except ImportError:
            pass
        self.collection = SigmaCollection
        # sysmon (category -> EventID, service sysmon) must run before windows-logsources
        # (service -> Channel), as the backend's README combines them.
        self.backend = sqliteBackend(sysmon_pipeline() + windows_logsource_pipeline(), table=table)
        self.table = table
        self.versions = {name: _dist_version(name) for name in
                         ('pysigma', 'pysigma-backend-sqlite', 'pysigma-pipeline-sysmon', 'pysigma-pipeline-windows')}

    def queries(self, text: str) -> list[str]:
        """SQL statements of one rule document, selecting the event index instead of *."""
        out = []
        for sql in self.backend.convert(self.collection.from_yaml(text)):
            # Older backend versions ignore the table option and name their table themselves.
            m = re.match(r'SELECT \* FROM \S+ WHERE ', sql) if isinstance(sql, str) else None
            if m is None:
                raise Unsupported(f'unexpected query shape: {str(sql)[:60]}')
            out.append('SELECT idx FROM events WHERE ' + sql[m.end():])
        return out


def _dist_version(name: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return 'not installed as a distribution'


# --- rules -------------------------------------------------------------------------------------------

def read_rules(sigma_dir: str):
    """(key, doc, text) per YAML document, keyed file#index as dump-engine.ts keys them."""
    files = []
    for root, dirs, names in os.walk(sigma_dir):
        dirs.sort()
        files += [os.path.join(root, n) for n in names if re.search(r'\.ya?ml$', n, re.I)]
    for path in sorted(files, key=lambda p: os.path.relpath(p, sigma_dir).split(os.sep)):
        rel = os.path.relpath(path, sigma_dir)
        text = open(path, encoding='utf-8').read()
        parts = re.split(r'^---[ \t]*$', text, flags=re.M)
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            yield f'{rel}#0', None, str(e)
            continue
        for i, doc in enumerate(docs):
            if isinstance(doc, dict):
                yield f'{rel}#{i}', doc, parts[i] if len(parts) == len(docs) else text


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.normpath(os.path.join(here, '../../../shared/data'))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('engine', help="dump-engine.ts output (JSON)")
    ap.add_argument('--sigma-dir', default=os.environ.get('SIGMA_DIR', os.path.join(shared, 'sigma-rules')))
    ap.add_argument('--events-dir', default=os.environ.get('EVENTS_DIR', os.path.join(shared, 'windows-events')))
    ap.add_argument('--db', default='/tmp/sigma-compare-events.sqlite', help='SQLite cache of the events table')
    ap.add_argument('--converter', choices=('builtin', 'pysigma'), default='builtin',
                    help='pysigma: the official pySigma + SQLite backend + sysmon/windows pipelines from the module path')
    ap.add_argument('--sql-nulls', action='store_true', help='keep SQL NULL logic (as pySigma/Zircolite): NOT over a missing field is false')
    ap.add_argument('--out', default='/tmp/sigma-compare-result.json', help='per-rule details (JSON)')
    args = ap.parse_args()

    engine = json.load(open(args.engine))
    rules = [(k, d, t) for k, d, t in read_rules(args.sigma_dir)]
    windows = [(k, d, t) for k, d, t in rules if d is not None and 'detection' in d and (d.get('logsource') or {}).get('product') == 'windows']
    # Every field any rule names gets a column, so no query fails on a missing column.
    probe = Converter({})
    for _, d, _ in windows:
        try:
            probe.rule(d)
        except Unsupported:
            pass
    t0 = time.time()
    db, n_events, cols = open_db(args.events_dir, probe.fields, args.db)
    print(f'events: {n_events} in SQLite ({len(cols)} columns) in {time.time() - t0:.0f} s', file=sys.stderr)
    if n_events != engine['events']:
        sys.exit(f'event count differs: reference {n_events}, engine {engine["events"]}')

    pysigma = None
    if args.converter == 'pysigma':
        try:
            pysigma = PySigmaConverter()
        except ImportError as e:
            sys.exit(f'--converter pysigma: {e}; install requirements-pysigma.txt (see README.md)')
        print('pySigma: ' + ', '.join(f'{k} {v}' for k, v in pysigma.versions.items()), file=sys.stderr)

    channel_of = {}
    for idx, ch, eid, et in db.execute(f'SELECT idx, lower({q(cols.get("channel", "Channel"))}), {q(cols.get("eventid", "EventID"))}, '
                                       f'{q(cols.get("eventtype", "EventType"))} FROM events'):
        channel_of[idx] = (ch, eid, et)

    results = {}
    causes = Counter()
    t0 = time.time()
    for key, doc, text in windows:
        ours = engine['rules'].get(key)
        r = {'title': doc.get('title'), 'id': doc.get('id'), 'logsource': doc.get('logsource')}
        if ours is None:
            r['cause'] = 'engine rejected the rule'
        else:
            if ours['id'] != doc.get('id'):
                sys.exit(f'rule keys do not line up at {key}: {ours["id"]} vs {doc.get("id")}')
            try:
                if args.converter == 'pysigma':
                    ref = set()
                    for sql in pysigma.queries(text):
                        ref |= {row[0] for row in db.execute(sql)}
                else:
                    where, params = Converter(cols, args.sql_nulls).rule(doc)
                    ref = {row[0] for row in db.execute(f'SELECT idx FROM events WHERE {where}', params)}
            except Unsupported as e:
                r['cause'] = f'reference could not convert: {e}'
            except (sqlite3.Error, re.error) as e:
                r['cause'] = f'reference failed to run: {type(e).__name__}: {str(e)[:80]}'
            except Exception as e:  # pySigma's own conversion errors
                r['cause'] = f'reference could not convert: {type(e).__name__}: {str(e)[:80]}'
            else:
                mine = set(ours['matches'])
                more, fewer = sorted(mine - ref), sorted(ref - mine)
                r.update(ref=len(ref), ours=len(mine), more=more[:20], fewer=fewer[:20], n_more=len(more), n_fewer=len(fewer))
                _, known = logsource_conditions(doc.get('logsource') or {})
                category = (doc.get('logsource') or {}).get('category')
                if not more and not fewer:
                    r['cause'] = 'agree (matches)' if mine else 'agree (no match)'
                elif not fewer and category == 'process_creation' and all(channel_of[i][:2] == ('security', '4688') for i in more):
                    r['cause'] = 'semantic: engine also routes process_creation to Security 4688'
                elif not more and category in ('registry_add', 'registry_delete') and all(
                        channel_of[i][2] != {'registry_add': 'CreateKey', 'registry_delete': 'DeleteKey'}[category] for i in fewer):
                    r['cause'] = 'semantic: engine also requires the EventType of registry_add/registry_delete'
                elif not more and not known:
                    r['cause'] = 'semantic: reference has no logsource condition for this category/service'
                else:
                    r['cause'] = 'unexplained: ' + ('engine matches more' if not fewer else 'engine matches fewer' if not more else 'both differ')
        causes[r['cause']] += 1
        results[key] = r
    print(f'rules run in {time.time() - t0:.0f} s', file=sys.stderr)
    compared = {k for k, _, _ in windows}
    out_of_scope = len([1 for k, d, _ in rules if d is not None and k not in compared])
    others_matching = sum(1 for k, d, _ in rules if d is not None and (d.get('logsource') or {}).get('product') != 'windows'
                          and engine['rules'].get(k, {}).get('matches'))
    json.dump({'events': n_events, 'causes': causes, 'rules': results}, open(args.out, 'w'), indent=1, default=list)
    agree = sum(v for c, v in causes.items() if c.startswith('agree'))
    print(f'events: {n_events}; Sigma documents: {len(rules)}; windows detection rules compared: {len(windows)}; '
          f'other products (not compared): {out_of_scope}, of which the engine fired on Windows events: {others_matching}')
    print(f'agree: {agree} ({causes["agree (matches)"]} with matches, {causes["agree (no match)"]} matching nothing)')
    for c, v in sorted(causes.items(), key=lambda x: -x[1]):
        if not c.startswith('agree'):
            print(f'  {v:5d}  {c}')
    for key, r in results.items():
        if r['cause'].startswith('unexplained'):
            print(f'{r["cause"]}: {key} "{r["title"]}" ours={r["ours"]} ref={r["ref"]} more={r["more"][:5]} fewer={r["fewer"][:5]}')
    print(f'details: {args.out}')


if __name__ == '__main__':
    main()
