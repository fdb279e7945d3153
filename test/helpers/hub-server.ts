/**
 * A loopback stand-in for the Hugging Face Hub: the endpoints and headers huggingface clients use,
 * over files from a local folder. Model info (/api/models/<id>/revision/<rev>), the file tree
 * (/api/models/<id>/tree/<rev>), paths-info, and /<id>/resolve/<rev>/<file> with etag, x-repo-commit
 * and, for LFS files (*.safetensors), x-linked-etag / x-linked-size and a 302 to a CDN path; Range
 * requests answered with 206. Every request is recorded; `token` makes every endpoint answer 401
 * without `Authorization: Bearer <token>`.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

interface HubFile {
  path: string;
  content: Buffer;
  /** Git blob sha1: the etag of a regular file. */
  oid: string;
  /** sha256: the etag of an LFS file. */
  lfs?: string;
}

export interface FakeHub {
  url: string;
  commit: string;
  requests: { method: string; path: string; auth: string | undefined }[];
  files: HubFile[];
  close(): Promise<void>;
}

export async function startFakeHub(options: { id: string; dir: string; token?: string }): Promise<FakeHub> {
  const commit = createHash('sha1').update(`commit of ${options.id}`).digest('hex');
  const files: HubFile[] = readdirSync(options.dir)
    .sort()
    .map((path) => {
      const content = readFileSync(join(options.dir, path));
      const oid = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
      return { path, content, oid, ...(path.endsWith('.safetensors') ? { lfs: createHash('sha256').update(content).digest('hex') } : {}) };
    });
  const requests: FakeHub['requests'] = [];
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const entry = (f: HubFile) => ({
    type: 'file',
    path: f.path,
    oid: f.oid,
    size: f.content.length,
    ...(f.lfs ? { lfs: { oid: f.lfs, size: f.content.length, pointerSize: 134 } } : {}),
  });
  const sendBytes = (req: IncomingMessage, res: ServerResponse, content: Buffer, headers: Record<string, string>) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!m) {
      res.writeHead(200, { 'content-length': String(content.length), 'accept-ranges': 'bytes', ...headers });
      res.end(req.method === 'HEAD' ? undefined : content);
      return;
    }
    const start = Number(m[1]);
    const end = m[2] ? Math.min(Number(m[2]), content.length - 1) : content.length - 1;
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${content.length}`, 'content-length': String(end - start + 1), ...headers });
    res.end(req.method === 'HEAD' ? undefined : content.subarray(start, end + 1));
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    requests.push({ method: req.method ?? 'GET', path: url.pathname, auth: req.headers.authorization });
    if (options.token && req.headers.authorization !== `Bearer ${options.token}`) {
      json(res, 401, { error: 'Invalid username or password.' }, { 'x-error-code': 'RepoNotFound' });
      return;
    }
    const id = options.id;
    const cdn = /^\/lfs-cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const f = files.find((x) => x.lfs === cdn[1]);
      if (!f) return json(res, 404, { error: 'not found' });
      return sendBytes(req, res, f.content, { etag: `"${f.lfs}"` });
    }
    let m = /^\/api\/models\/(.+)\/(revision|tree|paths-info)\/([^/]+)$/.exec(url.pathname);
    if (m) {
      if (m[1] !== id) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      if (m[3] !== 'main' && m[3] !== commit) return json(res, 404, { error: `Invalid rev id: ${m[3]}` }, { 'x-error-code': 'RevisionNotFound' });
      if (m[2] === 'revision')
        return json(res, 200, { _id: '0123456789abcdef01234567', id, sha: commit, private: false, siblings: files.map((f) => ({ rfilename: f.path })) });
      if (m[2] === 'tree') return json(res, 200, files.map(entry));
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => {
        const paths = (JSON.parse(body) as { paths: string[] }).paths;
        json(
          res,
          200,
          files.filter((f) => paths.includes(f.path)).map((f) => ({ ...entry(f), lastCommit: { id: commit, title: 'upload', date: '2026-01-01T00:00:00Z' } })),
        );
      });
      return;
    }
    m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) {
      if (m[1] !== id) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      const f = files.find((x) => x.path === m![3]);
      if (!f) return json(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
      const common = { 'x-repo-commit': commit };
      if (f.lfs) {
        res.writeHead(302, {
          location: `/lfs-cdn/${f.lfs}`,
          ...common,
          'x-linked-etag': `"${f.lfs}"`,
          'x-linked-size': String(f.content.length),
          etag: `"${f.oid}"`,
        });
        res.end();
        return;
      }
      return sendBytes(req, res, f.content, { ...common, etag: `"${f.oid}"` });
    }
    json(res, 404, { error: `no route ${url.pathname}` });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    commit,
    requests,
    files,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
