/** GET /v1/watch: the change feed as a stream, NDJSON (default) or SSE; heartbeats every 15 s. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type ChangeEvent, CompactedError, InvalidInputError, RegistryError } from '../../backends/contract.js';
import { validateNamespace } from '../../registry/validate.js';
import { feedRevision } from '../revision.js';
import { API } from '../wire.js';
import { busy, type NodeContext, optInt, optStr, type Q, type Route, str } from './common.js';

export function watchRoutes(node: NodeContext): Route[] {
  return [
    {
      method: 'GET',
      url: `${API}/watch`,
      summary:
        'Change feed from ?since=REV (exclusive) for ?ns=: NDJSON lines, or SSE with Accept: text/event-stream; 410 when compacted',
      errors: [410],
      responses: {
        200: {
          description: 'the change feed, one event per line (NDJSON) or per SSE event; heartbeats every 15 s',
          content: { 'application/x-ndjson': { schema: str }, 'text/event-stream': { schema: str } },
        },
      },
      schema: { querystring: { type: 'object', properties: { ns: str, since: str } } },
      handler: (req, reply) => watch(node, req, reply),
    },
  ];
}

async function watch(node: NodeContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const q = req.query as Q;
  const namespace = q.ns === undefined || q.ns === '' ? undefined : validateNamespace(optStr(q.ns, 'ns'));
  const since = optInt(q.since, 'since');
  if (node.streams.size + node.counters.watchesOpening >= node.limits.maxWatchers)
    return busy(
      reply,
      `the node already serves ${node.limits.maxWatchers} change-feed streams (registry serve --max-watchers): retry later`,
    );
  node.counters.watchesOpening++;
  try {
    await openWatch(node, req, reply, namespace, since);
  } finally {
    node.counters.watchesOpening--;
  }
}

async function openWatch(
  node: NodeContext,
  req: FastifyRequest,
  reply: FastifyReply,
  namespace: string | undefined,
  since: number | undefined,
): Promise<void> {
  const reg = node.registry;
  if (since !== undefined) {
    if (since < 0)
      throw new InvalidInputError(`invalid since ${since}: a revision is >= 0 (omit since to watch from now)`);
    const current = await reg.currentRevision();
    if (current !== undefined && since > current)
      throw new InvalidInputError(
        `invalid since ${since}: it is ahead of the feed's current revision ${current}; watch from a revision this node gave you`,
      );
  }
  const sse = /text\/event-stream/.test(req.headers.accept ?? '');
  const res = reply.raw;
  let buffered: ChangeEvent[] | null = [];
  let failure: Error | null = null;
  let open = true;
  const write = (e: ChangeEvent) => {
    if (!open) return;
    const line = JSON.stringify(e);
    res.write(sse ? `id: ${e.revision}\nevent: ${e.type}\ndata: ${line}\n\n` : `${line}\n`);
    // A consumer that stops reading is cut off rather than buffered without bound.
    if (res.writableLength > node.limits.watchBuffer) res.destroy();
  };
  const stop = await reg.watch(
    { namespace, sinceRevision: since },
    (e) => (buffered ? buffered.push(e) : write(e)),
    (err) => {
      failure = err;
      if (!buffered && open) {
        res.write(
          sse
            ? `event: error\ndata: ${JSON.stringify({ code: 'WATCH_FAILED', message: err.message })}\n\n`
            : `${JSON.stringify({ type: 'error', code: 'WATCH_FAILED', message: err.message })}\n`,
        );
        res.end();
      }
    },
  );
  if (failure) {
    stop();
    const msg = (failure as Error).message;
    const compacted = (failure as RegistryError).code === 'COMPACTED' || /compacted/.test(msg);
    throw compacted ? new CompactedError(msg) : new RegistryError('INTERNAL', msg);
  }
  // A number (awaited: a round trip on etcd), or no header when the backend cannot tell.
  const revision = await feedRevision(reg);
  reply.hijack();
  node.streams.add(res);
  node.counters.inFlight--;
  res.writeHead(200, {
    'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
    'cache-control': 'no-store',
    ...(revision !== undefined ? { 'x-revision': String(revision) } : {}),
  });
  res.flushHeaders();
  const pending = buffered;
  buffered = null;
  for (const e of pending) write(e);
  const beat = setInterval(() => {
    if (sse) return void res.write(': heartbeat\n\n');
    void feedRevision(reg).then((rev) => {
      if (open)
        res.write(
          `${JSON.stringify(rev === undefined ? { type: 'heartbeat' } : { type: 'heartbeat', revision: rev })}\n`,
        );
    });
  }, node.limits.heartbeatMs);
  beat.unref();
  res.once('close', () => {
    open = false;
    clearInterval(beat);
    stop();
    node.streams.delete(res);
  });
}
